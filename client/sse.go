package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// maxEventBytes caps one SSE line and one event's data, so a server that never sends a newline cannot
// grow the buffer without bound. A topology of a large fleet is well below this.
const maxEventBytes = 8 << 20

// ErrStreamEnded is returned (inside a *StreamError) when the server closed the event stream cleanly.
var ErrStreamEnded = errors.New("event stream ended")

// StreamError ends StreamReplication when the stream breaks or ends. Retry is the server's `retry:`
// hint (zero when it sent none); callers wait that long, or their own backoff, and reconnect.
type StreamError struct {
	Retry time.Duration
	Err   error
}

func (e *StreamError) Error() string { return "replication stream: " + e.Err.Error() }
func (e *StreamError) Unwrap() error { return e.Err }

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	Type string // "message" unless the server named it
	ID   string
	Data string
}

// sseParser implements the WHATWG event-stream parsing rules: lines end in CRLF, LF or CR; ":" starts
// a comment (heartbeats); data lines concatenate with "\n"; a blank line dispatches; an event without
// data is dropped; an unterminated event at EOF is dropped.
type sseParser struct {
	lastID string
	retry  time.Duration
}

// parse reads r until EOF (nil error) or a read failure, calling fn per event; an fn error stops it.
func (p *sseParser) parse(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	sc.Split(scanSSELines)
	var (
		data      strings.Builder
		hasData   bool
		eventType string
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if hasData {
				typ := eventType
				if typ == "" {
					typ = "message"
				}
				if err := fn(sseEvent{Type: typ, ID: p.lastID, Data: strings.TrimSuffix(data.String(), "\n")}); err != nil {
					return err
				}
			}
			data.Reset()
			hasData, eventType = false, ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			eventType = string(value)
		case "data":
			if data.Len()+len(value)+1 > maxEventBytes {
				return fmt.Errorf("event data exceeds %d bytes", maxEventBytes)
			}
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && isASCIIDigits(value) {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("event stream line exceeds %d bytes", maxEventBytes)
		}
		return &readError{err: err}
	}
	return nil
}

// readError is a failure of the underlying connection, as opposed to a malformed stream.
type readError struct{ err error }

func (e *readError) Error() string { return "read event stream: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isASCIIDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// scanSSELines splits on CRLF, LF or a lone CR, as the event-stream format requires.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	for i, c := range data {
		switch c {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			// A CR at the end of the buffer may be half of a CRLF: read more first.
			return 0, nil, nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// StreamReplication follows GET /replication/stream (SSE), calling fn for every `topology` event,
// until ctx is done (returns ctx.Err()) or the stream breaks or ends (returns a *StreamError; when the
// network failed it also matches ErrUnreachable). A non-2xx answer is an *APIError. Events of other
// types and heartbeat comments are ignored; a topology that does not decode ends the stream with an error.
func (c *Client) StreamReplication(ctx context.Context, fn func(api.CollectorTopology)) error {
	return c.Stream(ctx, StreamHandlers{Topology: fn})
}

// StreamHandlers receive the replication stream's events; a nil handler skips its type.
type StreamHandlers struct {
	Topology func(api.CollectorTopology) // `topology`: a collector pushed
	Event    func(api.Event)             // `replication_event`: the server detected a change
}

// Stream is StreamReplication with a handler per event type.
func (c *Client) Stream(ctx context.Context, h StreamHandlers) error {
	return c.streamEvents(ctx, "/replication/stream", func(ev sseEvent) error {
		switch {
		case ev.Type == "topology" && h.Topology != nil:
			var topo api.CollectorTopology
			if err := json.Unmarshal([]byte(ev.Data), &topo); err != nil {
				return fmt.Errorf("decode topology event: %w", err)
			}
			h.Topology(topo)
		case ev.Type == "replication_event" && h.Event != nil:
			var e api.Event
			if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
				return fmt.Errorf("decode replication event: %w", err)
			}
			h.Event(e)
		}
		return nil
	})
}

// streamEvents follows the event stream at path (relative to /api/v1, already escaped) until ctx
// ends or the stream does: a *StreamError, or ctx's error.
func (c *Client) streamEvents(ctx context.Context, path string, fn func(sseEvent) error) error {
	r := c.newRequest(ctx, c.stream).
		SetHeader("Accept", "text/event-stream").
		SetHeader("Cache-Control", "no-cache").
		SetDoNotParseResponse(true)
	resp, err := r.Get(APIPrefix + path)
	if err != nil {
		return c.transportError(ctx, http.MethodGet, path, err)
	}
	body := resp.RawBody()
	defer body.Close()
	if status := resp.StatusCode(); status < 200 || status > 299 {
		b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		return newAPIError(status, resp.Header(), b, time.Now())
	}
	if ct := resp.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("event stream: content type %q, want text/event-stream", ct)
	}
	// Closing the body unblocks the scanner as soon as the caller cancels or the stream goes idle.
	stop := context.AfterFunc(ctx, func() { body.Close() })
	defer stop()
	idle := &idleReader{r: body, idle: c.streamIdle}
	idle.timer = time.AfterFunc(c.streamIdle, func() {
		idle.expired.Store(true)
		body.Close()
	})
	defer idle.timer.Stop()

	var p sseParser
	err = p.parse(idle, fn)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var re *readError
	switch {
	case idle.expired.Load():
		err = fmt.Errorf("%w: no data for %s", ErrUnreachable, c.streamIdle)
	case err == nil:
		err = ErrStreamEnded
	case errors.As(err, &re):
		err = fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return &StreamError{Retry: p.retry, Err: err}
}

// idleReader restarts its watchdog timer on every read that returns data.
type idleReader struct {
	r       io.Reader
	timer   *time.Timer
	idle    time.Duration
	expired atomic.Bool
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 && !ir.expired.Load() {
		ir.timer.Reset(ir.idle)
	}
	return n, err
}
