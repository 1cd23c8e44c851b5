package server

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/config"
)

// TestGracefulDrain stops a server the way SIGTERM does and checks the order a load balancer
// needs: readiness fails at once while requests are still served (each asking its client to
// reconnect), then streams end with a retry hint, then the listener closes.
func TestGracefulDrain(t *testing.T) {
	const delay = 1500 * time.Millisecond
	ts := startServer(t, func(c *config.Config) { c.Limits.DrainDelay = config.Dur(delay) })
	viewer := ts.userToken("viewer", api.RoleViewer)
	if r := ts.do(req{method: "GET", path: "/api/v1/health/ready"}); r.status != http.StatusOK || r.closes {
		t.Fatalf("readiness before the drain: %d %s (closes %v)", r.status, r.body, r.closes)
	}

	hr, err := http.NewRequestWithContext(t.Context(), "GET", ts.url+"/api/v1/replication/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+viewer)
	stream, err := (&http.Client{Transport: &http.Transport{}}).Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, response{status: stream.StatusCode}, http.StatusOK)
	streamText := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stream.Body) // until the server ends the stream
		stream.Body.Close()
		streamText <- string(b)
	}()

	started := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()

	waitFor(t, func() bool {
		return ts.do(req{method: "GET", path: "/api/v1/health/ready"}).status == http.StatusServiceUnavailable
	})
	r := ts.do(req{method: "GET", path: "/api/v1/health/ready"})
	var probe api.Probe
	if err := json.Unmarshal(r.body, &probe); err != nil || probe.Status != "draining" {
		t.Fatalf("readiness while draining: %d %s", r.status, r.body)
	}
	live := ts.do(req{method: "GET", path: "/api/v1/health/live"})
	mustStatus(t, live, http.StatusOK)
	users := ts.do(req{method: "GET", path: "/api/v1/collectors", token: viewer})
	mustStatus(t, users, http.StatusOK)
	for name, r := range map[string]response{"readiness": r, "liveness": live, "a read": users} {
		if !r.closes {
			t.Errorf("%s while draining: no Connection: close", name)
		}
	}

	select {
	case text := <-streamText:
		if !strings.Contains(text, ": server shutting down; reconnect\nretry: 1000\n\n") {
			t.Errorf("stream ended without the drain hint: %q", text[max(0, len(text)-200):])
		}
		if since := time.Since(started); since < delay {
			t.Errorf("stream closed %s after SIGTERM, before the drain delay %s", since, delay)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stream still open 30 s after shutdown began")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run: %v", err)
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("the listener still accepts connections after shutdown")
	}
}

// TestProbesAreNeverRateLimited probes far faster than the limit from one address: liveness and
// readiness always answer, the deep health check still takes its tokens.
func TestProbesAreNeverRateLimited(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.RateLimitPerMinute = 10 })
	for _, path := range []string{"/api/v1/health/live", "/api/v1/health/ready"} {
		t.Run(path, func(t *testing.T) {
			for i := range 150 {
				if r := ts.do(req{method: "GET", path: path}); r.status != http.StatusOK {
					t.Fatalf("probe %d: %d %s", i+1, r.status, r.body)
				}
			}
		})
	}
	t.Run("deep health check", func(t *testing.T) {
		limited := 0
		for range 20 {
			if ts.do(req{method: "GET", path: "/api/v1/health"}).status == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("20 GET /api/v1/health past a limit of 10 per minute: no 429")
		}
	})
}
