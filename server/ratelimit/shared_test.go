package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStore keeps GCRA buckets in a map, or fails, or hangs until the query's deadline.
type fakeStore struct {
	mu    sync.Mutex
	tats  map[string]time.Time
	mode  string // "", "fail" or "hang"
	calls int
}

func (f *fakeStore) set(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = mode
}

func (f *fakeStore) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeStore) TakeRateLimit(ctx context.Context, key string, g GCRA, at time.Time) (Decision, error) {
	f.mu.Lock()
	f.calls++
	mode := f.mode
	f.mu.Unlock()
	switch mode {
	case "fail":
		return Decision{}, errors.New("connection refused")
	case "hang":
		<-ctx.Done()
		return Decision{}, fmt.Errorf("take: %w", ctx.Err())
	}
	if !at.IsZero() {
		return Decision{}, errors.New("the limiter must leave the time to the store")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var d Decision
	f.tats[key], d = g.Take(f.tats[key], fakeNow)
	return d, nil
}

// fakeNow is the fake store's clock: the buckets it holds never refill.
var fakeNow = time.Unix(1_700_000_000, 0)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestShared(st Store, perMinute int) (*Shared, *syncBuffer) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewShared(st, New(perMinute, 1000), SharedOptions{StoreTimeout: 20 * time.Millisecond, ProbeEvery: time.Second, Logger: log}), &logs
}

// TestSharedFallback walks the limiter through a store outage: decisions from the store while it
// answers, from memory (one warning) while it fails or hangs, one probe per second meanwhile, and
// back to the store (one info line) when a probe gets an answer.
func TestSharedFallback(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			st := &fakeStore{tats: map[string]time.Time{}}
			l, logs := newTestShared(st, 5)
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)

			// The store answers: its buckets decide (a second server would share them).
			for i := range 5 {
				if d := l.Allow(ctx, "ip:a", now); !d.Allowed || d.Remaining != 4-i {
					t.Fatalf("request %d with the store: %+v", i, d)
				}
			}
			if d := l.Allow(ctx, "ip:a", now); d.Allowed {
				t.Fatalf("6th request with the store: %+v", d)
			}
			if st.callCount() != 6 || l.Away() || l.Fallbacks() != 0 {
				t.Fatalf("calls %d away %v fallbacks %d", st.callCount(), l.Away(), l.Fallbacks())
			}

			// The store goes away: the first request waits at most the timeout, then this server's own
			// buckets decide (fresh: the same limit, per server), without asking the store again.
			st.set(mode)
			start := time.Now()
			d := l.Allow(ctx, "ip:a", now)
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Fatalf("the first request of the outage took %s", took)
			}
			if !d.Allowed || d.Remaining != 4 || !l.Away() {
				t.Fatalf("first request of the outage: %+v, away %v", d, l.Away())
			}
			calls := st.callCount()
			admitted := 1
			for range 20 {
				if l.Allow(ctx, "ip:a", now.Add(500*time.Millisecond)).Allowed {
					admitted++
				}
			}
			if admitted != 5 || st.callCount() != calls {
				t.Fatalf("in memory: admitted %d of 21 (want 5), store asked %d times within the probe interval",
					admitted, st.callCount()-calls)
			}

			// A probe a second later: one request tries the store, fails, the others stay in memory.
			for range 10 {
				l.Allow(ctx, "ip:b", now.Add(1500*time.Millisecond))
			}
			if st.callCount() != calls+1 || !l.Away() {
				t.Fatalf("probes in the second after the outage: %d", st.callCount()-calls)
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
				t.Fatalf("%d warnings for one outage:\n%s", n, logs)
			}

			// The store is back: the next probe ends the outage, and the shared buckets decide again.
			st.set("")
			if d := l.Allow(ctx, "ip:a", now.Add(3*time.Second)); d.Allowed {
				t.Fatalf("the probe must be decided by the store's (empty) bucket: %+v", d)
			}
			if l.Away() {
				t.Fatal("still away after a successful probe")
			}
			if d := l.Allow(ctx, "ip:c", now.Add(3*time.Second)); !d.Allowed || d.Remaining != 4 {
				t.Fatalf("after the outage: %+v", d)
			}
			out := logs.String()
			if strings.Count(out, "level=WARN") != 1 || strings.Count(out, "level=INFO") != 1 ||
				!strings.Contains(out, "shared through the store again") {
				t.Fatalf("logs:\n%s", out)
			}
			if want := int64(31); l.Fallbacks() != want {
				t.Fatalf("fallbacks %d, want %d", l.Fallbacks(), want)
			}
		})
	}
}

// TestSharedConcurrentOutage starts an outage from many requests at once: one warning, no request
// waits much past the timeout, none fails.
func TestSharedConcurrentOutage(t *testing.T) {
	st := &fakeStore{tats: map[string]time.Time{}, mode: "hang"}
	l, logs := newTestShared(st, 1_000_000)
	now := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 64 {
		wg.Go(func() {
			for j := range 50 {
				if d := l.Allow(context.Background(), fmt.Sprintf("ip:%d", i), now.Add(time.Duration(j)*time.Millisecond)); !d.Allowed {
					t.Errorf("refused: %+v", d)
				}
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("64×50 requests during an outage took %s", took)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings:\n%s", n, logs)
	}
	if st.callCount() > 64 {
		t.Fatalf("the store was asked %d times during the outage", st.callCount())
	}
}

// TestSharedClientGone: a request whose client went away still gets the store's decision (its
// token is taken) and is no sign of an outage.
func TestSharedClientGone(t *testing.T) {
	st := &fakeStore{tats: map[string]time.Time{}}
	l, logs := newTestShared(st, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := l.Allow(ctx, "ip:a", time.Now()); !d.Allowed || d.Remaining != 9 || st.callCount() != 1 {
		t.Fatalf("%+v after %d store calls", d, st.callCount())
	}
	if l.Away() || strings.Contains(logs.String(), "WARN") {
		t.Fatalf("a cancelled request started an outage: %s", logs)
	}
}

// TestSharedWithoutStore keeps every bucket in memory.
func TestSharedWithoutStore(t *testing.T) {
	l := NewShared(nil, New(3, 100), SharedOptions{})
	now := time.Now()
	for i := range 4 {
		if d := l.Allow(context.Background(), "k", now); d.Allowed != (i < 3) {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	if l.Fallbacks() != 0 || l.Away() || l.PerMinute() != 3 {
		t.Fatalf("fallbacks %d away %v", l.Fallbacks(), l.Away())
	}
}
