package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Event-stream timing.
const (
	heartbeatEvery   = 15 * time.Second
	streamWriteLimit = 10 * time.Second // a client that cannot take one event within this is dropped
	retryHintMs      = 3000
)

var (
	heartbeat = []byte(": heartbeat\n\n")
	drainHint = []byte(": server shutting down; reconnect\nretry: 1000\n\n")
)

// streamsRetryAfter is the Retry-After (seconds) of a stream refused for the caps.
const streamsRetryAfter = "30"

// handleReplicationStream is GET /api/v1/replication/stream?collector_id=: Server-Sent Events, one
// `topology` event per collector push (first the current state of every collector followed), with
// heartbeat comments so proxies and clients can tell a quiet stream from a dead one.
func (s *Server) handleReplicationStream(w http.ResponseWriter, r *http.Request, p *principal) {
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
	sub, unsubscribe, err := s.hub.subscribe(filter, p.key())
	switch {
	case errors.Is(err, errHubClosed):
		writeErr(w, newError(http.StatusServiceUnavailable, codeShuttingDown, "server shutting down: reconnect (to another server)"))
		return
	case err != nil: // a cap
		limit, msg := "server", fmt.Sprintf("this server has its %d event streams open: retry later or on another server", s.cfg.Limits.StreamsMax)
		if errors.Is(err, errPrincipalStreams) {
			limit, msg = "principal", fmt.Sprintf("already %d event streams open for you on this server: close one first", s.cfg.Limits.StreamsPerPrincipal)
		}
		s.metrics.sseRefused.WithLabelValues(limit).Inc()
		w.Header().Set("Retry-After", streamsRetryAfter)
		writeErr(w, newError(http.StatusTooManyRequests, codeRateLimited, "%s", msg))
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

	// send writes one event (shared bytes, never modified here) and flushes it within the limit.
	send := func(ev []byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteLimit)); err != nil {
			return false
		}
		if _, err := w.Write(ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: " + strconv.Itoa(retryHintMs) + "\n\n")) {
		return
	}
	for _, t := range current {
		ev, err := topologyEvent(t)
		if err != nil || !send(ev) {
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
			if s.draining.Load() {
				// Shutting down: tell the client to come back soon; through the load balancer that
				// is another server.
				send(drainHint)
			}
			return
		case ev := <-sub.events:
			if !send(ev) {
				return
			}
		case <-hb.C:
			if !send(heartbeat) {
				return
			}
		}
	}
}
