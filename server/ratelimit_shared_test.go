package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/ratelimit"
	"github.com/pganalytics/pganalytics/server/store"
)

// TestRateLimitSharedAcrossServers sends one client's requests round robin, several at a time, to
// 1, 2 and 3 servers on one store (each with its own pool, as behind a load balancer that forwards
// the client's address): together they admit what one server does, the burst plus the refill
// while the test runs, within 10 %.
func TestRateLimitSharedAcrossServers(t *testing.T) {
	const perMinute, requests, clients = 60, 240, 6
	for _, servers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d servers", servers), func(t *testing.T) {
			dsn, st, pool := testDB(t)
			var fleet []*testServer
			for i := range servers {
				own := st
				if i > 0 {
					var err error
					if own, err = store.Open(t.Context(), dsn, store.Options{MaxConns: 10}); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(own.Close)
				}
				warmPool(t, own, clients)
				fleet = append(fleet, startServerOn(t, dsn, own, pool, func(c *config.Config) {
					c.RateLimitPerMinute = perMinute
					c.TrustedProxies = []string{"127.0.0.1"}
					c.ServerName = fmt.Sprintf("%s-%d", c.ServerName, i)
					// This test measures sharing, not the fallback: a loaded test machine's slow
					// query must not make a server decide alone.
					c.Limits.RateLimitStoreTimeout = config.Dur(2 * time.Second)
				}))
			}
			fallbacks := func() (n int64) {
				for _, ts := range fleet {
					n += ts.srv.limiter.(*ratelimit.Shared).Fallbacks()
				}
				return n
			}
			// A store query slower than the limiter's timeout (a loaded test machine) makes a server
			// decide alone for a second, which is not what this test measures: such a run is repeated
			// with another client address.
			for attempt := 1; ; attempt++ {
				client := fmt.Sprintf("203.0.113.%d", attempt)
				before := fallbacks()
				got, refused, elapsed := sendRoundRobin(t, fleet, client, requests, clients)
				if fallbacks() != before {
					if attempt < 3 {
						t.Logf("attempt %d: a server fell back to its own buckets; again", attempt)
						continue
					}
					t.Fatalf("servers fell back to their own buckets in %d attempts (the store answered too slowly)", attempt)
				}
				oneServer := perMinute + elapsed.Seconds()*perMinute/60 // the burst, plus the refill meanwhile
				t.Logf("%d servers: %d of %d admitted in %s (one server's budget %.1f; per-server buckets would admit up to %.0f)",
					servers, got, requests, elapsed.Round(time.Millisecond), oneServer, float64(servers)*oneServer)
				if got < perMinute || float64(got) > math.Ceil(1.1*oneServer) {
					t.Fatalf("%d servers admitted %d, want within 10 %% of %.1f", servers, got, oneServer)
				}
				if got+refused != requests {
					t.Fatalf("admitted %d + refused %d != %d", got, refused, requests)
				}
				if n := queryCount(t, fleet[0], `SELECT count(*) FROM rate_limits WHERE key = 'ip:`+client+`'`); n != 1 {
					t.Fatalf("%d rows for the client's bucket", n)
				}
				return
			}
		})
	}
}

// warmPool opens n connections in st's pool, as a server that has been serving has them.
func warmPool(t *testing.T, st *store.Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := st.Ping(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// sendRoundRobin sends requests GET /metrics from client (X-Forwarded-For) to the servers in turn,
// from parallel goroutines, and counts 200s and 429s; any other answer fails the test.
func sendRoundRobin(t *testing.T, fleet []*testServer, client string, requests, parallel int) (admitted, refused int64, elapsed time.Duration) {
	var next, ok, limited atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(requests) {
					return
				}
				r := fleet[int(n)%len(fleet)].do(req{method: "GET", path: "/metrics", header: map[string]string{"X-Forwarded-For": client}})
				switch r.status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
					if r.header.Get("Retry-After") != "1" { // at most one token's interval
						t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
					}
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), limited.Load(), time.Since(start)
}

// TestRateLimitStoreAwayFallsBack takes the store away under a server: requests are still
// answered, by this server's own buckets (the same limit), never with a 5xx and never waiting on
// the store; when the store answers again the shared buckets take over.
func TestRateLimitStoreAwayFallsBack(t *testing.T) {
	const perMinute = 10
	for _, tc := range []struct {
		name     string
		takeAway func(t *testing.T, ts *testServer) (restore func())
	}{
		{"store closed", func(t *testing.T, ts *testServer) func() {
			ts.store.Close()
			return nil
		}},
		{"store stuck (rate_limits locked)", func(t *testing.T, ts *testServer) func() {
			tx, err := ts.pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(t.Context(), `LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			return func() { _ = tx.Rollback(context.Background()) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) { c.RateLimitPerMinute = perMinute })
			limiter := ts.srv.limiter.(*ratelimit.Shared)
			for range 3 {
				mustStatus(t, ts.do(req{method: "GET", path: "/metrics"}), http.StatusOK)
			}
			if n := queryCount(t, ts, `SELECT count(*) FROM rate_limits WHERE key = 'ip:127.0.0.1'`); n != 1 {
				t.Fatalf("the shared bucket has %d rows", n)
			}

			restore := tc.takeAway(t, ts)
			admitted := 0
			start := time.Now()
			for i := range 30 {
				t0 := time.Now()
				r := ts.do(req{method: "GET", path: "/metrics"})
				if took := time.Since(t0); took > time.Second {
					t.Fatalf("request %d took %s", i+1, took)
				}
				switch r.status {
				case http.StatusOK:
					admitted++
				case http.StatusTooManyRequests:
					if r.header.Get("X-RateLimit-Limit") != "10" || r.header.Get("Retry-After") == "" {
						t.Fatalf("429 headers: %v", r.header)
					}
				default:
					t.Fatalf("request %d during the outage: %d %s", i+1, r.status, r.body)
				}
			}
			// This server's own bucket, fresh when the outage began: the burst, plus the refill.
			if refill := int(time.Since(start).Seconds() * perMinute / 60); admitted < perMinute || admitted > perMinute+refill+1 {
				t.Fatalf("admitted %d of 30 during the outage, want the in-memory burst of %d", admitted, perMinute)
			}
			if !limiter.Away() || limiter.Fallbacks() < 30 {
				t.Fatalf("away %v, fallbacks %d", limiter.Away(), limiter.Fallbacks())
			}
			if restore == nil {
				return
			}

			restore()
			for deadline := time.Now().Add(10 * time.Second); limiter.Away(); {
				if time.Now().After(deadline) {
					t.Fatal("still falling back 10 s after the store came back")
				}
				time.Sleep(ratelimit.DefaultProbeEvery / 4)
				ts.do(req{method: "GET", path: "/metrics"}) // a probe, once a second
			}
			before := limiter.Fallbacks()
			// The shared bucket again, which has tokens left (3 taken before the outage, one by the
			// probe), where this server's own is empty.
			r := ts.do(req{method: "GET", path: "/metrics"})
			mustStatus(t, r, http.StatusOK)
			if rem, _ := strconv.Atoi(r.header.Get("X-RateLimit-Remaining")); rem < 1 || rem > perMinute-5 {
				t.Fatalf("remaining %d after the outage, want the shared bucket's", rem)
			}
			if limiter.Fallbacks() != before {
				t.Fatal("decided in memory with the store back")
			}
		})
	}
}
