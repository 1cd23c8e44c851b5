package sender

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/internal/api"
)

// fakeAPI imitates /api/v1/metrics/push: it decodes each body and answers with whatever the test's
// script says for that request number.
type fakeAPI struct {
	mu       sync.Mutex
	received []time.Time // collected_at of accepted batches, in arrival order
	times    []time.Time // arrival time of every request
	requests atomic.Int64
	answer   func(n int64, w http.ResponseWriter) bool // true: handled (the batch is not accepted)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	if r.URL.Path != "/api/v1/metrics/push" || r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Encoding") != "gzip" {
		http.Error(w, `{"error":{"code":"bad_request","message":"unexpected request"}}`, http.StatusBadRequest)
		return
	}
	if f.answer != nil && f.answer(n, w) {
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, `{"error":{"code":"bad_request","message":"not gzip"}}`, http.StatusBadRequest)
		return
	}
	var req api.PushRequest
	if err := json.NewDecoder(zr).Decode(&req); err != nil {
		http.Error(w, `{"error":{"code":"bad_request","message":"not json"}}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.received = append(f.received, req.CollectedAt)
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(api.PushResponse{Accepted: len(req.Metrics)})
}

func (f *fakeAPI) accepted() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.received...)
}

func gzipBatch(t testing.TB, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	json.NewEncoder(zw).Encode(api.PushRequest{CollectedAt: at, Metrics: []api.Sample{{Name: "pg_up", Value: 1, Timestamp: at}}})
	zw.Close()
	return buf.Bytes()
}

func setup(t *testing.T, f *fakeAPI, dir string) (*buffer.Queue, *Sender) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Options{BaseURL: srv.URL, Token: "tok", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := buffer.Open(buffer.Options{Dir: dir, MemoryMaxBytes: 1 << 20, DiskMaxBytes: 1 << 20, RejectedMaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return q, New(q, c, Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
}

func pushN(t *testing.T, q *buffer.Queue, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		at := time.Unix(int64(1_700_000_000+i), 0).UTC()
		if err := q.Push(gzipBatch(t, at), at); err != nil {
			t.Fatal(err)
		}
	}
}

// waitEmpty polls until the queue is drained (bounded; the test fails on timeout).
func waitEmpty(t *testing.T, q *buffer.Queue) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for q.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d batches", q.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkInOrder(t *testing.T, got []time.Time, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("API accepted %d batches, want %d", len(got), want)
	}
	for i := range got {
		if wantAt := time.Unix(int64(1_700_000_000+i), 0).UTC(); !got[i].Equal(wantAt) {
			t.Fatalf("batch %d has collected_at %v, want %v (oldest first, original timestamps)", i, got[i], wantAt)
		}
	}
}

// TestOutageLosesNothing: the API refuses connections for its first 30 requests while 40 batches
// pile up; when it returns every one arrives exactly once, oldest first.
func TestOutageLosesNothing(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	f := &fakeAPI{answer: func(n int64, w http.ResponseWriter) bool {
		if n > 30 {
			down.Store(false)
		}
		if down.Load() {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close() // as if the API died mid-request
			return true
		}
		return false
	}}
	dir := t.TempDir()
	q, s := setup(t, f, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	pushN(t, q, 0, 20)
	pushN(t, q, 20, 20)
	waitEmpty(t, q)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, f.accepted(), 40)
	if st := s.Stats(); st.Delivered != 40 || st.Failures < 30 {
		t.Errorf("stats = %+v", st)
	}
}

// TestCrashThenRestartDelivers: batches spooled during an outage survive the process (no Close,
// a new queue and sender over the same directory) and are delivered by the next one.
func TestCrashThenRestartDelivers(t *testing.T) {
	dir := t.TempDir()
	down := &fakeAPI{answer: func(int64, http.ResponseWriter) bool { return false }}
	down.answer = func(_ int64, w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"unavailable","message":"down"}}`)
		return true
	}
	q1, s1 := setup(t, down, dir)
	pushN(t, q1, 0, 5)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s1.Run(ctx) }()
	for down.requests.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	pushN(t, q1, 5, 5)
	cancel()
	<-done
	// kill -9: only the spool directory carries over. Everything is on disk already (nothing left
	// for Close to spill), and Close releases the spool's lock as the kernel would.
	if st := q1.Stats(); st.MemoryBatches != 0 || st.DiskBatches != 10 {
		t.Fatalf("before the crash: %+v, want all 10 batches on disk", st)
	}
	q1.Close()

	up := &fakeAPI{}
	q2, s2 := setup(t, up, dir)
	if q2.Len() != 10 {
		t.Fatalf("restarted spool holds %d batches, want 10", q2.Len())
	}
	if err := s2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, up.accepted(), 10)
}

func TestRetryAfterHonoured(t *testing.T) {
	f := &fakeAPI{answer: func(n int64, w http.ResponseWriter) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}}
	q, s := setup(t, f, t.TempDir())
	pushN(t, q, 0, 1)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	times := append([]time.Time(nil), f.times...)
	f.mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("requests = %d", len(times))
	}
	// Backoff alone is 5 ms; only Retry-After explains a full second.
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retried after %s, before the server's Retry-After of 1s", gap)
	}
	checkInOrder(t, f.accepted(), 1)
}

func TestServerErrorsAndGarbageAreRetried(t *testing.T) {
	f := &fakeAPI{answer: func(n int64, w http.ResponseWriter) bool {
		switch n {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "<html>oops</html>")
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		case 3:
			w.WriteHeader(http.StatusRequestTimeout)
		case 4:
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "\x00\x01garbage") // a broken proxy's "success"
		default:
			return false
		}
		return true
	}}
	q, s := setup(t, f, t.TempDir())
	pushN(t, q, 0, 2)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, f.accepted(), 2)
	if st := s.Stats(); st.Failures != 4 || st.Rejected != 0 {
		t.Errorf("stats = %+v, want 4 failed attempts and no rejection", st)
	}
}

func TestMalformedBatchSetAside(t *testing.T) {
	f := &fakeAPI{answer: func(n int64, w http.ResponseWriter) bool {
		if n == 1 {
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"error":{"code":"invalid_metric","message":"metric name too long"}}`)
			return true
		}
		return false
	}}
	dir := t.TempDir()
	q, s := setup(t, f, dir)
	pushN(t, q, 0, 2)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.accepted(); len(got) != 1 || !got[0].Equal(time.Unix(1_700_000_001, 0)) {
		t.Errorf("accepted = %v, want only the second batch", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, buffer.RejectedDir, "*.batch"))
	if len(files) != 1 {
		t.Fatalf("rejected/ holds %v", files)
	}
	reason, _ := os.ReadFile(files[0] + ".reason")
	if !bytes.Contains(reason, []byte("metric name too long")) {
		t.Errorf("reason = %q", reason)
	}
}

// TestRefusedCollectorStops: a revoked token (401) or a collector the API refuses (403: deleted,
// no client certificate) stops delivery at once with every batch kept, none set aside as malformed.
func TestRefusedCollectorStops(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   error
	}{
		{http.StatusUnauthorized, `{"error":{"code":"token_revoked","message":"token revoked"}}`, ErrUnauthorized},
		{http.StatusForbidden, `{"error":{"code":"forbidden","message":"a client certificate is required for collectors (mutual TLS)"}}`, ErrForbidden},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			f := &fakeAPI{answer: func(_ int64, w http.ResponseWriter) bool {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
				return true
			}}
			dir := t.TempDir()
			q, s := setup(t, f, dir)
			pushN(t, q, 0, 3)
			err := s.Run(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if f.requests.Load() != 1 {
				t.Errorf("requests = %d: a refused collector must not be retried", f.requests.Load())
			}
			if st := q.Stats(); st.DiskBatches != 3 {
				t.Errorf("batches kept on disk = %d, want 3 (nothing lost)", st.DiskBatches)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, buffer.RejectedDir, "*.batch")); len(files) != 0 {
				t.Errorf("batches set aside as malformed: %v", files)
			}
		})
	}
}

// jitter makes randN deterministic: "min" always draws 0, "max" always the largest value, so a
// delay is exactly its lower or its upper bound.
var jitters = []struct {
	name  string
	randN func(n time.Duration) time.Duration
}{
	{"min", func(time.Duration) time.Duration { return 0 }},
	{"max", func(n time.Duration) time.Duration { return n - 1 }},
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name             string
		opts             Options
		wantMin, wantMax time.Duration
	}{
		{"zero: 1 s doubling to 5 s", Options{}, time.Second, 5 * time.Second},
		{"only a longer minimum: the cap rises to it", Options{MinBackoff: 10 * time.Second}, 10 * time.Second, 10 * time.Second},
		{"a cap below the minimum is the minimum", Options{MinBackoff: 2 * time.Second, MaxBackoff: time.Second}, 2 * time.Second, 2 * time.Second},
		{"explicit", Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, 100 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, nil, tt.opts)
			if s.opts.MinBackoff != tt.wantMin || s.opts.MaxBackoff != tt.wantMax {
				t.Errorf("backoff %s..%s, want %s..%s", s.opts.MinBackoff, s.opts.MaxBackoff, tt.wantMin, tt.wantMax)
			}
		})
	}
}

// TestBackoffSequence: with the defaults the delay after the n-th failure in a row doubles from
// [0.5 s, 1 s] and never exceeds 5 s however long the outage; the random part keeps it within
// [cap/2, cap] (equal jitter), and both bounds are reached.
func TestBackoffSequence(t *testing.T) {
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 2500 * time.Millisecond, 5 * time.Second},
		{5, 2500 * time.Millisecond, 5 * time.Second},
		{60, 2500 * time.Millisecond, 5 * time.Second},     // a few minutes of outage
		{100000, 2500 * time.Millisecond, 5 * time.Second}, // days of outage
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt %d", tt.attempt), func(t *testing.T) {
			s := New(nil, nil, Options{})
			for _, j := range jitters {
				s.randN = j.randN
				want := tt.min
				if j.name == "max" {
					want = tt.max
				}
				if d := s.backoff(tt.attempt); d != want {
					t.Errorf("%s jitter: backoff(%d) = %s, want %s", j.name, tt.attempt, d, want)
				}
			}
			s.randN = rand.N[time.Duration]
			seen := map[time.Duration]bool{}
			for range 200 {
				d := s.backoff(tt.attempt)
				if d < tt.min || d > tt.max {
					t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("backoff(%d) gave the same delay 200 times: no jitter", tt.attempt)
			}
		})
	}
}

// TestDelayHonoursRetryAfter: a Retry-After longer than the backoff wins, plus up to 10 % so the
// collectors it turned away do not return together; past MaxRetryAfter it is capped; a shorter one
// leaves the backoff alone.
func TestDelayHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{"no Retry-After: the backoff", 1, 0, 500 * time.Millisecond, time.Second},
		{"shorter than the backoff: the backoff", 4, time.Second, 2500 * time.Millisecond, 5 * time.Second},
		{"the API's push limit (2 s)", 1, 2 * time.Second, 2 * time.Second, 2200 * time.Millisecond},
		{"the API's rate limit (1 s), no shorter than the first backoff", 1, time.Second, time.Second, time.Second},
		{"the API's stream cap (30 s), far above the 5 s cap", 10, 30 * time.Second, 30 * time.Second, 33 * time.Second},
		{"exactly the cap", 1, MaxRetryAfter, MaxRetryAfter, MaxRetryAfter + MaxRetryAfter/10},
		{"an hour: capped", 1, time.Hour, MaxRetryAfter, MaxRetryAfter + MaxRetryAfter/10},
		{"a day (client.ParseRetryAfter's own cap): capped", 3, 24 * time.Hour, MaxRetryAfter, MaxRetryAfter + MaxRetryAfter/10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, nil, Options{})
			for _, j := range jitters {
				s.randN = j.randN
				want := tt.min
				if j.name == "max" {
					want = tt.max
				}
				if d := s.delay(tt.attempt, tt.retryAfter); d != want {
					t.Errorf("%s jitter: delay(%d, %s) = %s, want %s", j.name, tt.attempt, tt.retryAfter, d, want)
				}
			}
		})
	}
}

// scriptedPusher answers push n (from 1) with script(n): nil accepts the batch. It runs on the
// sender's goroutine, so script may add batches to the queue at an exact point of the sequence.
type scriptedPusher struct {
	mu       sync.Mutex
	n        int
	events   *[]string
	accepted []time.Time
	script   func(n int) error
}

func (p *scriptedPusher) PushGzip(_ context.Context, body []byte) (api.PushResponse, error) {
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	if err := p.script(n); err != nil {
		*p.events = append(*p.events, "fail")
		return api.PushResponse{}, err
	}
	req, err := decodeBatch(body)
	if err != nil {
		return api.PushResponse{}, err
	}
	p.mu.Lock()
	p.accepted = append(p.accepted, req.CollectedAt)
	p.mu.Unlock()
	*p.events = append(*p.events, "ok")
	return api.PushResponse{Accepted: len(req.Metrics)}, nil
}

// decodeBatch reads a gzip JSON push body, as the API would.
func decodeBatch(body []byte) (api.PushRequest, error) {
	var req api.PushRequest
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return req, err
	}
	err = json.NewDecoder(zr).Decode(&req)
	return req, err
}

// TestRunRetrySequence drives Run with the default options through an outage and a recovery, with
// sleeps recorded instead of waited: refused connections and 503/429 answers back off as the table
// of delays says (the 5 s cap, Retry-After honoured and capped at a minute), the backlog (batches
// spilled from memory and batches spooled during the outage) then goes out oldest first with no
// sleep between batches, and a failure after a success starts again from the first delay.
func TestRunRetrySequence(t *testing.T) {
	refused := fmt.Errorf("%w: connection refused", client.ErrUnreachable)
	for _, j := range jitters {
		t.Run(j.name+" jitter", func(t *testing.T) {
			q, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MemoryMaxBytes: 1 << 20, DiskMaxBytes: 1 << 20, RejectedMaxBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			// push adds batches from the sender's goroutine, where t.Fatal must not be called.
			push := func(from, n int) {
				for i := from; i < from+n; i++ {
					at := time.Unix(int64(1_700_000_000+i), 0).UTC()
					if err := q.Push(gzipBatch(t, at), at); err != nil {
						t.Errorf("queue batch %d: %v", i, err)
					}
				}
			}
			var events []string
			p := &scriptedPusher{events: &events}
			p.script = func(n int) error {
				switch n {
				case 1, 5, 10:
					return refused
				case 2:
					return &client.APIError{Status: http.StatusServiceUnavailable, Code: "database_unavailable", RetryAfter: 3 * time.Second}
				case 3:
					push(4, 3) // collected during the outage: straight to disk
					return refused
				case 4:
					return &client.APIError{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: time.Hour}
				case 6:
					push(7, 1) // collected while the backlog drains
				}
				return nil
			}
			s := New(q, p, Options{})
			s.randN = j.randN
			var sleeps []time.Duration
			s.sleep = func(ctx context.Context, d time.Duration) bool {
				events = append(events, "sleep")
				sleeps = append(sleeps, d)
				return ctx.Err() == nil
			}
			pushN(t, q, 0, 4) // in memory until the first failure spills them
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			waitEmpty(t, q)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			want := []struct {
				what     string
				min, max time.Duration
			}{
				{"1st failure, refused", 500 * time.Millisecond, time.Second},
				{"2nd, 503 Retry-After 3s over a 2 s backoff", 3 * time.Second, 3300 * time.Millisecond},
				{"3rd, refused", 2 * time.Second, 4 * time.Second},
				{"4th, 429 Retry-After 1h: capped", time.Minute, 66 * time.Second},
				{"5th, refused: the 5 s cap", 2500 * time.Millisecond, 5 * time.Second},
				{"first failure after a success: reset", 500 * time.Millisecond, time.Second},
			}
			if len(sleeps) != len(want) {
				t.Fatalf("slept %d times (%v), want %d: events %v", len(sleeps), sleeps, len(want), events)
			}
			for i, w := range want {
				exact := w.min
				if j.name == "max" {
					exact = w.max
				}
				if sleeps[i] != exact {
					t.Errorf("sleep %d (%s) = %s, want %s", i+1, w.what, sleeps[i], exact)
				}
			}
			// A sleep follows every failure and nothing else: no pause between delivered batches.
			for i, e := range events {
				if e == "sleep" && (i == 0 || events[i-1] != "fail") {
					t.Fatalf("event %d is a sleep after %q, want sleeps only after failed pushes: %v", i, events[i-1], events)
				}
				if e == "fail" && (i+1 >= len(events) || events[i+1] != "sleep") {
					t.Fatalf("failed push %d not followed by a sleep: %v", i, events)
				}
			}
			if got, want := strings.Join(events, " "),
				"fail sleep fail sleep fail sleep fail sleep fail sleep ok ok ok ok fail sleep ok ok ok ok"; got != want {
				t.Errorf("events:\n got %s\nwant %s", got, want)
			}
			p.mu.Lock()
			accepted := append([]time.Time(nil), p.accepted...)
			p.mu.Unlock()
			checkInOrder(t, accepted, 8)
			if st := s.Stats(); st.Delivered != 8 || st.Failures != 6 {
				t.Errorf("stats = %+v, want 8 delivered, 6 failed attempts", st)
			}
		})
	}
}

// TestFlushRetrySequence: Flush (--once, shutdown) uses the same delays, starting again from the
// first after each delivered batch.
func TestFlushRetrySequence(t *testing.T) {
	q := buffer.NewMemory(buffer.Options{MemoryMaxBytes: 1 << 20})
	var events []string
	p := &scriptedPusher{events: &events, script: func(n int) error {
		switch n {
		case 1, 2, 4:
			return &client.APIError{Status: http.StatusBadGateway, Code: "bad_gateway"}
		}
		return nil
	}}
	s := New(q, p, Options{})
	s.randN = jitters[1].randN
	var sleeps []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) bool { sleeps = append(sleeps, d); return true }
	pushN(t, q, 0, 2)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, time.Second}; fmt.Sprint(sleeps) != fmt.Sprint(want) {
		t.Errorf("sleeps = %v, want %v", sleeps, want)
	}
	checkInOrder(t, p.accepted, 2)
}

// TestNoSpoolFlushSaysNothingWasKept: on a queue without a spool (--once beside a running
// collector), a batch the API does not take is reported as not delivered and not spooled.
func TestNoSpoolFlushSaysNothingWasKept(t *testing.T) {
	f := &fakeAPI{answer: func(_ int64, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := client.New(client.Options{BaseURL: srv.URL, Token: "tok", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q := buffer.NewMemory(buffer.Options{MemoryMaxBytes: 1 << 20})
	s := New(q, c, Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	pushN(t, q, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.Flush(ctx)
	if !errors.Is(err, ErrNotSpooled) || !strings.Contains(err.Error(), "1 batch(es) not delivered and not spooled: api: 503") {
		t.Fatalf("Flush = %v, want ErrNotSpooled with the API's answer", err)
	}
	if f.requests.Load() < 2 {
		t.Errorf("requests = %d: the push was not retried", f.requests.Load())
	}
}

// TestCancelMidPushDoesNotResend: shutdown (Run's ctx cancelled) while a push is on the wire lets it
// finish: the server stored the batch, so the shutdown flush must not send it a second time.
func TestCancelMidPushDoesNotResend(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	f := &fakeAPI{}
	f.answer = func(n int64, _ http.ResponseWriter) bool {
		if n == 1 {
			close(arrived)
			<-release // the server is slow to answer the first push
		}
		return false
	}
	q, s := setup(t, f, t.TempDir())
	pushN(t, q, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-arrived
	cancel()
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	flushCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := s.Flush(flushCtx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	checkInOrder(t, f.accepted(), 1)
	if n := f.requests.Load(); n != 1 {
		t.Errorf("%d pushes, want 1: the in-flight batch was sent again after shutdown", n)
	}
}

// idAPI imitates the push endpoint's series ids: it hands back an id for every sample sent by
// name, takes samples by id that it handed out, and answers whatever refuse says instead.
type idAPI struct {
	mu     sync.Mutex
	ids    map[string]int64
	pushes []api.PushRequest
	refuse func(req api.PushRequest) (int, string) // status and code, 0 to accept
	stored int
}

func (f *idAPI) PushGzip(_ context.Context, body []byte) (api.PushResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, err := decodeBatch(body)
	if err != nil {
		return api.PushResponse{}, err
	}
	f.pushes = append(f.pushes, req)
	if f.refuse != nil {
		if status, code := f.refuse(req); status != 0 {
			return api.PushResponse{}, &client.APIError{Status: status, Code: code, Message: code}
		}
	}
	var res api.PushResponse
	var key strings.Builder
	for _, m := range req.Metrics {
		k := seriesKey(&key, &m)
		if f.ids[k] == 0 {
			f.ids[k] = int64(len(f.ids) + 1)
		}
		res.SeriesIDs = append(res.SeriesIDs, f.ids[k])
	}
	res.Accepted = req.Samples()
	f.stored += res.Accepted
	return res, nil
}

func samplesBatch(t *testing.T, at time.Time, names ...string) []byte {
	t.Helper()
	req := api.PushRequest{CollectedAt: at}
	for i, n := range names {
		req.Metrics = append(req.Metrics, api.Sample{Name: n, Value: float64(i), Labels: map[string]string{"instance": "db1:5432"}})
	}
	body, err := newSeriesIDs().gzipJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestSendsKnownSeriesByID: after a push by name, the series it named go by id, new series by
// name beside them; refused ids (409 from a store that does not know them, 400 from an API that
// predates them) are forgotten and the batch goes again at once, by name, nothing lost.
func TestSendsKnownSeriesByID(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		status int
		code   string
	}{
		{"stale ids", http.StatusConflict, "unknown_series"},
		{"an API without series ids", http.StatusBadRequest, "malformed_json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &idAPI{ids: map[string]int64{}}
			s := New(nil, f, Options{})
			ctx := t.Context()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.push(ctx, samplesBatch(t, at, "pg_up", "pg_wal_bytes")))
			must(s.push(ctx, samplesBatch(t, at.Add(10*time.Second), "pg_up", "pg_wal_bytes", "pg_new")))
			second := f.pushes[1]
			if second.ByID.Len() != 2 || len(second.Metrics) != 1 || second.Metrics[0].Name != "pg_new" ||
				second.ByID.TimestampsMS != nil || !slices.Equal(second.ByID.Values, []float64{0, 1}) {
				t.Fatalf("second push: by id %+v, by name %+v", second.ByID, second.Metrics)
			}
			f.refuse = func(req api.PushRequest) (int, string) {
				if req.ByID != nil {
					return tc.status, tc.code
				}
				return 0, ""
			}
			must(s.push(ctx, samplesBatch(t, at.Add(20*time.Second), "pg_up", "pg_new")))
			if n := len(f.pushes); n != 4 || f.pushes[3].ByID != nil || len(f.pushes[3].Metrics) != 2 {
				t.Fatalf("after the refusal: %d pushes, the last %+v", n, f.pushes[n-1])
			}
			if f.stored != 2+3+2 {
				t.Fatalf("stored %d samples, want 7", f.stored)
			}
			// The ids were learnt again from the push by name.
			f.refuse = nil
			must(s.push(ctx, samplesBatch(t, at.Add(30*time.Second), "pg_up", "pg_new")))
			if last := f.pushes[len(f.pushes)-1]; last.ByID.Len() != 2 || len(last.Metrics) != 0 {
				t.Fatalf("after relearning: %+v", last)
			}
		})
	}
}

func TestSeriesIDsKeepOwnTimestamps(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	c := newSeriesIDs()
	req := api.PushRequest{CollectedAt: at, Metrics: []api.Sample{
		{Name: "a", Value: 1, Timestamp: at.Add(-time.Minute)}, {Name: "b", Value: 2}}}
	var key strings.Builder
	c.learn([]string{seriesKey(&key, &req.Metrics[0]), seriesKey(&key, &req.Metrics[1])}, []int64{7, 8})
	body, err := c.gzipJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	p := c.plan(body)
	got, err := decodeBatch(p.body)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{at.Add(-time.Minute).UnixMilli(), at.UnixMilli()}
	if p.byID != 2 || !slices.Equal(got.ByID.SeriesIDs, []int64{7, 8}) || !slices.Equal(got.ByID.TimestampsMS, want) {
		t.Fatalf("rewritten %+v", got.ByID)
	}
}

// BenchmarkSeriesIDPlan is the sender's cost of rewriting one spooled batch of 100 samples (a
// primary and a standby's cycle) to send its known series by id: gunzip, decode, encode, gzip.
func BenchmarkSeriesIDPlan(b *testing.B) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	req := api.PushRequest{CollectedAt: at}
	for i := range 100 {
		req.Metrics = append(req.Metrics, api.Sample{Name: fmt.Sprintf("pg_metric_%d", i%40), Value: float64(i) * 1.5,
			Labels: map[string]string{"instance": fmt.Sprintf("db%d:5432", i%2), "application_name": fmt.Sprintf("standby%d", i%3)}})
	}
	c := newSeriesIDs()
	body, err := c.gzipJSON(req)
	if err != nil {
		b.Fatal(err)
	}
	var key strings.Builder
	keys := make([]string, len(req.Metrics))
	ids := make([]int64, len(req.Metrics))
	for i := range req.Metrics {
		keys[i], ids[i] = seriesKey(&key, &req.Metrics[i]), int64(i+1)
	}
	c.learn(keys, ids)
	b.ReportAllocs()
	for b.Loop() {
		if p := c.plan(body); p.byID != len(req.Metrics) {
			b.Fatalf("%d by id", p.byID)
		}
	}
}

// FuzzSeriesIDPlan: whatever a spooled body holds, plan neither fails nor loses a sample: it sends
// the body as it is, or a rewrite with every sample, by id or by name.
func FuzzSeriesIDPlan(f *testing.F) {
	c := newSeriesIDs()
	var key strings.Builder
	up := api.Sample{Name: "pg_up", Labels: map[string]string{"instance": "db1:5432"}}
	c.learn([]string{seriesKey(&key, &up)}, []int64{7})
	for _, s := range []string{
		`{"collected_at":"2026-12-06T21:00:00Z","metrics":[{"name":"pg_up","value":1,"labels":{"instance":"db1:5432"}},{"name":"pg_new","value":2}]}`,
		`{"collected_at":"2026-12-06T21:00:00Z","metrics":[{"name":"pg_up","value":1,"labels":{"instance":"db1:5432"},"timestamp":"2026-12-06T20:59:00Z"}]}`,
		`{"collected_at":"2026-12-06T21:00:00Z","by_id":{"series_ids":[7],"values":[1]}}`,
		`{"metrics":null}`, `[]`, `{`,
	} {
		body, err := c.gzipJSON(json.RawMessage(s))
		if err == nil {
			f.Add(body)
		}
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p := c.plan(body)
		if p.byID == 0 {
			if !bytes.Equal(p.body, body) {
				t.Fatal("nothing sent by id, yet the body was rewritten")
			}
			return
		}
		in, err := decodeBatch(body)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeBatch(p.body)
		if err != nil {
			t.Fatal(err)
		}
		if out.Samples() != len(in.Metrics) || out.ByID.Len() != p.byID || len(out.Metrics) != len(p.keys) {
			t.Fatalf("%d samples in, %d out (%d by id)", len(in.Metrics), out.Samples(), out.ByID.Len())
		}
	})
}
