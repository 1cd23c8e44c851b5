package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      []sseEvent
		wantRetry time.Duration
	}{
		{"single", "event: topology\ndata: {}\n\n", []sseEvent{{Type: "topology", Data: "{}"}}, 0},
		{"default type", "data: x\n\n", []sseEvent{{Type: "message", Data: "x"}}, 0},
		{"multi-line data", "data: line1\ndata: line2\ndata:\n\n", []sseEvent{{Type: "message", Data: "line1\nline2\n"}}, 0},
		{"comments and heartbeats", ": hello\n\n:heartbeat\n\nevent: a\n: inside\ndata: 1\n\n", []sseEvent{{Type: "a", Data: "1"}}, 0},
		{"CRLF", "event: a\r\ndata: 1\r\n\r\n", []sseEvent{{Type: "a", Data: "1"}}, 0},
		{"lone CR", "event: a\rdata: 1\r\r", []sseEvent{{Type: "a", Data: "1"}}, 0},
		{"no space after colon", "data:x\n\n", []sseEvent{{Type: "message", Data: "x"}}, 0},
		{"only one space stripped", "data:  x\n\n", []sseEvent{{Type: "message", Data: " x"}}, 0},
		{"field without colon", "data\n\n", []sseEvent{{Type: "message", Data: ""}}, 0},
		{"event without data dropped", "event: a\n\ndata: b\n\n", []sseEvent{{Type: "message", Data: "b"}}, 0},
		{"type resets per event", "event: a\ndata: 1\n\ndata: 2\n\n", []sseEvent{{Type: "a", Data: "1"}, {Type: "message", Data: "2"}}, 0},
		{"id persists", "id: 7\ndata: 1\n\ndata: 2\n\n", []sseEvent{{Type: "message", ID: "7", Data: "1"}, {Type: "message", ID: "7", Data: "2"}}, 0},
		{"id with NUL ignored", "id: a\x00b\ndata: 1\n\n", []sseEvent{{Type: "message", Data: "1"}}, 0},
		{"retry", "retry: 2500\n\n", nil, 2500 * time.Millisecond},
		{"bad retry ignored", "retry: 2s\nretry: -1\nretry: +5\n\n", nil, 0},
		{"unknown field ignored", "foo: bar\ndata: 1\n\n", []sseEvent{{Type: "message", Data: "1"}}, 0},
		{"unterminated event at EOF dropped", "data: 1\n\ndata: 2", []sseEvent{{Type: "message", Data: "1"}}, 0},
		{"empty", "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, reader := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"byte by byte", iotest.OneByteReader(strings.NewReader(tt.in))},
			} {
				var p sseParser
				var got []sseEvent
				err := p.parse(reader.r, func(ev sseEvent) error { got = append(got, ev); return nil })
				if err != nil {
					t.Fatalf("%s: %v", reader.name, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: events = %#v, want %#v", reader.name, got, tt.want)
				}
				if p.retry != tt.wantRetry {
					t.Errorf("%s: retry = %s, want %s", reader.name, p.retry, tt.wantRetry)
				}
			}
		})
	}
}

func TestSSEParserLimits(t *testing.T) {
	var p sseParser
	long := "data: " + strings.Repeat("x", maxEventBytes) + "\n\n"
	err := p.parse(strings.NewReader(long), func(sseEvent) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want a size error", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("y", 1<<20)+"\n", 9) + "\n"
	err = p.parse(strings.NewReader(many), func(sseEvent) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want a size error for accumulated data", err)
	}
	boom := errors.New("boom")
	err = p.parse(iotest.ErrReader(boom), func(sseEvent) error { return nil })
	var re *readError
	if !errors.As(err, &re) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want a readError wrapping the cause", err)
	}
}

func FuzzSSEParser(f *testing.F) {
	for _, seed := range []string{
		"event: topology\ndata: {}\n\n",
		"data: a\r\ndata: b\r\n\r\n",
		": heartbeat\n\nretry: 100\nid: 1\n\n",
		"data\rdata:\r\r",
		"\x00\xff:\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var whole, bytewise []sseEvent
		var p1, p2 sseParser
		err1 := p1.parse(strings.NewReader(string(in)), func(ev sseEvent) error { whole = append(whole, ev); return nil })
		err2 := p2.parse(iotest.OneByteReader(strings.NewReader(string(in))), func(ev sseEvent) error { bytewise = append(bytewise, ev); return nil })
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("chunking changed the outcome: %v vs %v", err1, err2)
		}
		if err1 == nil && !reflect.DeepEqual(whole, bytewise) {
			t.Fatalf("chunking changed the events:\n%#v\n%#v", whole, bytewise)
		}
		for _, ev := range whole {
			if ev.Type == "" || strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n\x00") {
				t.Fatalf("bad event %#v", ev)
			}
		}
	})
}

// sseServer writes the given chunks, flushing after each, then ends the response.
func sseHandler(status int, contentType string, chunks ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/replication/stream" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		for _, c := range chunks {
			io.WriteString(w, c)
			w.(http.Flusher).Flush()
		}
	})
}

func topologyEvent(id string) string {
	return fmt.Sprintf("event: topology\ndata: {\"collector_id\":%q,\ndata: \"collector_name\":\"n\"}\n\n", id)
}

func TestStreamReplication(t *testing.T) {
	multiLine := "event: topology\ndata: {\"collector_id\":\"c2\",\ndata: \"collector_name\":\"n\"}\n\n"
	tests := []struct {
		name    string
		handler http.Handler
		wantIDs []string
		check   func(t *testing.T, err error)
	}{
		{
			name: "events then clean end",
			handler: sseHandler(200, "text/event-stream",
				"retry: 1500\n: heartbeat\n\n", `event: topology`+"\n"+`data: {"collector_id":"c1"}`+"\n\n",
				"event: other\ndata: ignored\n\n", multiLine),
			wantIDs: []string{"c1", "c2"},
			check: func(t *testing.T, err error) {
				var se *StreamError
				if !errors.As(err, &se) || !errors.Is(err, ErrStreamEnded) || se.Retry != 1500*time.Millisecond {
					t.Fatalf("err = %#v, want StreamError{Retry 1.5s, ErrStreamEnded}", err)
				}
				if errors.Is(err, ErrUnreachable) {
					t.Error("a clean end is not unreachable")
				}
			},
		},
		{
			name: "unauthorized",
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":{"code":"unauthorized","message":"token expired"}}`, 401)
			}),
			check: func(t *testing.T, err error) {
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "unauthorized" {
					t.Fatalf("err = %v, want a 401 *APIError", err)
				}
			},
		},
		{
			name:    "not an event stream",
			handler: sseHandler(200, "application/json", "{}"),
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "text/event-stream") {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name:    "undecodable topology",
			handler: sseHandler(200, "text/event-stream", "event: topology\ndata: {not json\n\n"),
			check: func(t *testing.T, err error) {
				var se *StreamError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), "decode topology") || errors.Is(err, ErrUnreachable) {
					t.Fatalf("err = %v, want a decode StreamError", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, tt.handler)
			var ids []string
			err := c.StreamReplication(context.Background(), func(tp api.CollectorTopology) { ids = append(ids, tp.CollectorID) })
			tt.check(t, err)
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestStreamReplicationBrokenConnection(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", "1000") // promise more than is sent: the client sees an unexpected EOF
		w.WriteHeader(200)
		io.WriteString(w, topologyEvent("c1"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	var n int
	err := c.StreamReplication(context.Background(), func(api.CollectorTopology) { n++ })
	var se *StreamError
	if !errors.As(err, &se) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want a StreamError matching ErrUnreachable", err)
	}
	if n != 1 {
		t.Errorf("got %d events before the break, want 1", n)
	}
}

func TestStreamReplicationStopsOnCancel(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, topologyEvent("c1"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	err := c.StreamReplication(ctx, func(api.CollectorTopology) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestStreamReplicationIdleWatchdog(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, topologyEvent("c1"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence: no events, no heartbeats
	}))
	c.streamIdle = 100 * time.Millisecond
	var n int
	err := c.StreamReplication(context.Background(), func(api.CollectorTopology) { n++ })
	var se *StreamError
	if !errors.As(err, &se) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no data for") {
		t.Fatalf("err = %v, want an idle StreamError matching ErrUnreachable", err)
	}
	if n != 1 {
		t.Errorf("got %d events, want 1", n)
	}
}

// TestStreamEvents: replication events reach their handler, topologies theirs, in stream order.
func TestStreamEvents(t *testing.T) {
	c, _ := newTestClient(t, sseHandler(200, "text/event-stream",
		`event: topology`+"\n"+`data: {"collector_id":"c1"}`+"\n\n",
		`event: replication_event`+"\n"+`data: {"id":7,"kind":"promotion","cluster":"orders","instance":"db2"}`+"\n\n"))
	var got []string
	err := c.Stream(context.Background(), StreamHandlers{
		Topology: func(tp api.CollectorTopology) { got = append(got, "topology:"+tp.CollectorID) },
		Event:    func(e api.Event) { got = append(got, fmt.Sprintf("event:%d:%s:%s", e.ID, e.Kind, e.Instance)) },
	})
	if !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("err = %v", err)
	}
	if want := []string{"topology:c1", "event:7:promotion:db2"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestEventsQueryValues(t *testing.T) {
	q := EventsQuery{Cluster: "orders", Kinds: []string{"promotion", "split_brain"}, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Limit: 5, Cursor: "99"}
	if got, want := q.Values().Encode(), "cluster=orders&cursor=99&kind=promotion%2Csplit_brain&limit=5&since=2026-01-02T03%3A04%3A05Z"; got != want {
		t.Errorf("values = %s, want %s", got, want)
	}
}
