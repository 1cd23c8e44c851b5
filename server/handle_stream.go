package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Event-stream timing.
const (
	heartbeatEvery   = 15 * time.Second
	streamWriteLimit = 10 * time.Second // a client that cannot take one event within this is dropped
	retryHintMs      = 3000
)

// handleReplicationStream is GET /api/v1/replication/stream?collector_id=: Server-Sent Events, one
// `topology` event per collector push (first the current state of every collector followed), with
// heartbeat comments so proxies and clients can tell a quiet stream from a dead one.
func (s *Server) handleReplicationStream(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "collector_id")
	if e != nil {
		writeErr(w, e)
		return
	}
	filter := q.Get("collector_id")
	if len(filter) > maxIDBytes {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "collector not found"))
		return
	}
	sub, unsubscribe, ok := s.hub.subscribe(filter)
	if !ok {
		writeErr(w, newError(http.StatusServiceUnavailable, codeShuttingDown, "server shutting down: reconnect (to another server)"))
		return
	}
	defer unsubscribe()
	ctx := r.Context()
	// Subscribed first, then the current state: a push in between is sent twice, never missed.
	current, err := s.store.Replication(ctx, filter)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "replication", err))
		return
	}
	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()

	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise end the stream (and cancel its context) after two
	// minutes; writes get their own per-event deadline below.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "streaming unsupported"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func() bool {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteLimit)); err != nil {
			return false
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	event := func(t api.CollectorTopology) bool {
		data, err := json.Marshal(t)
		if err != nil {
			return false
		}
		buf.WriteString("event: topology\ndata: ")
		buf.Write(data)
		buf.WriteString("\n\n")
		return send()
	}

	buf.WriteString("retry: ")
	buf.WriteString(strconv.Itoa(retryHintMs))
	buf.WriteString("\n\n")
	if !send() {
		return
	}
	for _, t := range current {
		if !event(t) {
			return
		}
	}
	hb := time.NewTicker(heartbeatEvery)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.gone:
			return
		case t := <-sub.events:
			if !event(t) {
				return
			}
		case <-hb.C:
			buf.WriteString(": heartbeat\n\n")
			if !send() {
				return
			}
		}
	}
}
