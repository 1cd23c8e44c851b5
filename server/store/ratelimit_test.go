package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/server/ratelimit"
	"github.com/pganalytics/pganalytics/server/store"
)

// rlT0 is the tests' clock origin, whole microseconds (the store's precision).
var rlT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// TestRateLimitGCRA runs request sequences through the store's statement at chosen times.
func TestRateLimitGCRA(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	type step struct {
		key       string
		at        time.Duration // after rlT0
		n         int           // requests (default 1), each expecting the same outcome…
		allowed   bool
		remaining int           // …but for remaining, which counts down from this one when allowed
		retry     time.Duration // when refused
	}
	for _, tc := range []struct {
		name      string
		perMinute int
		steps     []step
	}{
		{"burst then refusal", 100, []step{
			{key: "a", n: 100, allowed: true, remaining: 99},
			{key: "a", allowed: false, retry: 600 * time.Millisecond},
			{key: "a", at: 100 * time.Millisecond, n: 20, allowed: false, retry: 500 * time.Millisecond},
		}},
		{"refill", 100, []step{
			{key: "a", n: 100, allowed: true, remaining: 99},
			{key: "a", at: 599 * time.Millisecond, allowed: false, retry: time.Millisecond},
			{key: "a", at: 600 * time.Millisecond, allowed: true, remaining: 0},
			{key: "a", at: 600 * time.Millisecond, allowed: false, retry: 600 * time.Millisecond},
			{key: "a", at: 30600 * time.Millisecond, n: 50, allowed: true, remaining: 49},
			{key: "a", at: 30600 * time.Millisecond, allowed: false, retry: 600 * time.Millisecond},
			{key: "a", at: 10 * time.Minute, allowed: true, remaining: 99}, // idle: full again
		}},
		{"refusals do not advance the bucket", 1, []step{
			{key: "a", allowed: true, remaining: 0},
			{key: "a", at: time.Second, n: 30, allowed: false, retry: 59 * time.Second},
			{key: "a", at: time.Minute, allowed: true, remaining: 0},
		}},
		{"independent keys", 3, []step{
			{key: "ip:192.0.2.1", n: 3, allowed: true, remaining: 2},
			{key: "ip:192.0.2.1", allowed: false, retry: 20 * time.Second},
			{key: "ip:192.0.2.10", n: 3, allowed: true, remaining: 2},
			{key: "user:192.0.2.1", n: 3, allowed: true, remaining: 2},
			{key: "ip:192.0.2.1", allowed: false, retry: 20 * time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, pool, `TRUNCATE rate_limits`)
			g := ratelimit.NewGCRA(tc.perMinute)
			for i, st := range tc.steps {
				for j := range max(st.n, 1) {
					d, err := s.TakeRateLimit(ctx, st.key, g, rlT0.Add(st.at))
					if err != nil {
						t.Fatal(err)
					}
					want := ratelimit.Decision{Allowed: st.allowed, Limit: tc.perMinute, RetryAfter: st.retry}
					if st.allowed {
						want.Remaining = st.remaining - j
					}
					if d != want {
						t.Fatalf("step %d request %d (%s at +%s): %+v, want %+v", i, j+1, st.key, st.at, d, want)
					}
				}
			}
		})
	}
}

// TestRateLimitMatchesReference replays random request times through the store and through
// ratelimit.GCRA.Take: the same decisions.
func TestRateLimitMatchesReference(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	rng := rand.New(rand.NewPCG(7, 9))
	g := ratelimit.NewGCRA(60)
	tats := map[string]time.Time{}
	now := rlT0
	admitted := 0
	for i := range 600 {
		now = now.Add(time.Duration(rng.Int64N(int64(200 * time.Millisecond))).Truncate(time.Microsecond))
		key := fmt.Sprintf("k%d", rng.IntN(3))
		var want ratelimit.Decision
		tats[key], want = g.Take(tats[key], now)
		got, err := s.TakeRateLimit(ctx, key, g, now)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("request %d (%s at +%s): store %+v, reference %+v", i, key, now.Sub(rlT0), got, want)
		}
		if got.Allowed {
			admitted++
		}
	}
	if admitted == 0 || admitted == 600 {
		t.Fatalf("admitted %d of 600: the sequence tests nothing", admitted)
	}
}

// TestRateLimitConcurrentServers takes from one key through two stores (two servers' pools) at
// once: exactly the burst is admitted, never more.
func TestRateLimitConcurrentServers(t *testing.T) {
	dsn, _ := migratedDB(t)
	stores := []*store.Store{openStore(t, dsn, store.Options{MaxConns: 8}), openStore(t, dsn, store.Options{MaxConns: 8})}
	g := ratelimit.NewGCRA(100)
	ctx := ctxT(t)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for range 25 {
				d, err := stores[w%2].TakeRateLimit(ctx, "ip:198.51.100.7", g, rlT0)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				} else if d.RetryAfter <= 0 || d.RetryAfter > g.Emission {
					t.Errorf("refused with retry %s", d.RetryAfter)
				}
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 100 {
		t.Fatalf("admitted %d of 400 concurrent requests, want the burst of 100", admitted.Load())
	}
}

// TestRateLimitDatabaseClock: without a time the statement uses now() of the database.
func TestRateLimitDatabaseClock(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	g := ratelimit.NewGCRA(60)
	for i := range 3 {
		d, err := s.TakeRateLimit(ctx, "collector:c1", g, time.Time{})
		if err != nil || !d.Allowed || d.Remaining != 59-i {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
	}
	// Three tokens taken: tat is three seconds ahead of the database's clock.
	ahead := queryInt(t, pool, `SELECT extract(epoch FROM tat - now())::bigint FROM rate_limits WHERE key = 'collector:c1'`)
	if ahead < 2 || ahead > 3 {
		t.Fatalf("tat %d s ahead of now(), want 3", ahead)
	}
	if queryInt(t, pool, `SELECT count(*) FROM pg_class WHERE relname = 'rate_limits' AND relpersistence = 'u'`) != 1 {
		t.Fatal("rate_limits is not an unlogged table")
	}
}

// TestRateLimitHostileKeys: keys PostgreSQL text or a btree entry cannot hold are hashed, and keep
// their own buckets.
func TestRateLimitHostileKeys(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	g := ratelimit.NewGCRA(1)
	keys := []string{
		"ip:203.0.113.5",
		strings.Repeat("x", 10_000),
		strings.Repeat("x", 10_000) + "y",
		"user:\x00nul",
		"user:\xff\xfe",
		"ip:'; DROP TABLE rate_limits; --",
	}
	for _, k := range keys {
		if d, err := s.TakeRateLimit(ctx, k, g, rlT0); err != nil || !d.Allowed {
			t.Fatalf("first request of %.20q: %+v, %v", k, d, err)
		}
		if d, err := s.TakeRateLimit(ctx, k, g, rlT0); err != nil || d.Allowed {
			t.Fatalf("second request of %.20q: %+v, %v", k, d, err)
		}
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM rate_limits`); n != int64(len(keys)) {
		t.Fatalf("%d rows for %d keys", n, len(keys))
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM rate_limits WHERE key LIKE 'sha256:%' AND length(key) = 71`); n != 4 {
		t.Fatalf("%d hashed keys, want 4", n)
	}
}

// TestDeleteExpiredRateLimits drops the rows of full buckets only.
func TestDeleteExpiredRateLimits(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	g := ratelimit.NewGCRA(60)
	past := time.Now().Add(-2 * time.Minute).Truncate(time.Microsecond)
	for _, k := range []string{"ip:old1", "ip:old2"} {
		if _, err := s.TakeRateLimit(ctx, k, g, past); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TakeRateLimit(ctx, "ip:fresh", g, time.Time{}); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpiredRateLimits(ctx)
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	if queryInt(t, pool, `SELECT count(*) FROM rate_limits WHERE key = 'ip:fresh'`) != 1 {
		t.Fatal("a bucket in use was deleted")
	}
}

// TestRateLimitStoreBusy: a statement held up by a lock gives up at the caller's deadline, with an
// error that says so.
func TestRateLimitStoreBusy(t *testing.T) {
	s, pool := newStore(t)
	tx, err := pool.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // the test's own lock
	if _, err := tx.Exec(ctxT(t), `LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.TakeRateLimit(ctx, "ip:a", ratelimit.NewGCRA(10), time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline exceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("gave up after %s", took)
	}
}

// BenchmarkRateLimitStore is one request's rate-limit statement on the store: serially (latency),
// and from parallel goroutines over 1000 keys (throughput).
func BenchmarkRateLimitStore(b *testing.B) {
	s, _ := newStore(b)
	g := ratelimit.NewGCRA(1_000_000)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("collector:%08d-0000-4000-8000-000000000000", i)
	}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.TakeRateLimit(ctx, keys[i%len(keys)], g, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.TakeRateLimit(ctx, keys[next.Add(1)%int64(len(keys))], g, time.Time{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestRateLimitRefusalWritesNothing: a refused request leaves the row as it was (no new version).
func TestRateLimitRefusalWritesNothing(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	g := ratelimit.NewGCRA(1)
	if d, err := s.TakeRateLimit(ctx, "ip:a", g, rlT0); err != nil || !d.Allowed {
		t.Fatalf("%+v, %v", d, err)
	}
	version := func() (xmin, tat string) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT xmin::text, tat::text FROM rate_limits WHERE key = 'ip:a'`).Scan(&xmin, &tat); err != nil {
			t.Fatal(err)
		}
		return xmin, tat
	}
	xmin, tat := version()
	for range 10 {
		if d, err := s.TakeRateLimit(ctx, "ip:a", g, rlT0.Add(time.Second)); err != nil || d.Allowed {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if x, tt := version(); x != xmin || tt != tat {
		t.Fatalf("refusals rewrote the row: xmin %s→%s, tat %s→%s", xmin, x, tat, tt)
	}
}
