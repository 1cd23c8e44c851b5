package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

func TestCORS(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.CORSAllowedOrigins = []string{"https://grafana.example.com"} })
	corsHeaders := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}
	preflight := func(origin string) response {
		return ts.do(req{method: "OPTIONS", path: "/api/v1/collectors", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization",
		}})
	}

	r := preflight("https://grafana.example.com")
	mustStatus(t, r, http.StatusNoContent)
	for _, h := range corsHeaders {
		if r.header.Get(h) == "" {
			t.Errorf("allowed preflight lacks %s", h)
		}
	}
	if r.header.Get("Access-Control-Allow-Origin") != "https://grafana.example.com" || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("allowed preflight headers %v", r.header)
	}

	r = preflight("https://evil.example.com")
	if r.status < 400 || r.errorCode() != codeCORSDenied {
		t.Fatalf("foreign preflight: %d %s", r.status, r.body)
	}
	for _, h := range append(corsHeaders, "Vary") {
		if v := r.header.Get(h); v != "" {
			t.Errorf("foreign preflight has %s: %q", h, v)
		}
	}

	r = ts.do(req{method: "GET", path: "/api/v1/health", header: map[string]string{"Origin": "https://grafana.example.com"}})
	if r.header.Get("Access-Control-Allow-Origin") != "https://grafana.example.com" || r.header.Get("Vary") != "Origin" {
		t.Errorf("simple request from allowed origin: %v", r.header)
	}
	r = ts.do(req{method: "GET", path: "/api/v1/health", header: map[string]string{"Origin": "https://evil.example.com"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("simple request from foreign origin got Access-Control-Allow-Origin")
	}
}

// TestSecurityHeadersEverywhere checks the headers on successes, errors, the mux's own 404/405 and
// the Prometheus exposition, over plain HTTP (no HSTS) and through a trusted HTTPS proxy (HSTS).
func TestSecurityHeadersEverywhere(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8"}
	})
	requests := []req{
		{method: "GET", path: "/api/v1/health"},
		{method: "GET", path: "/api/v1/users"},
		{method: "GET", path: "/nope"},
		{method: "DELETE", path: "/api/v1/health"},
		{method: "GET", path: "/metrics"},
		{method: "POST", path: "/api/v1/auth/login", body: `{`},
	}
	for _, rq := range requests {
		r := ts.do(rq)
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s %s: %s = %q", rq.method, rq.path, k, got)
			}
		}
		if len(r.header.Get("X-Request-ID")) < 16 || r.header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s %s: request id %q, HSTS %q", rq.method, rq.path, r.header.Get("X-Request-ID"), r.header.Get("Strict-Transport-Security"))
		}
		if r.status >= 400 && r.errorCode() == "" {
			t.Errorf("%s %s: %d without a JSON error: %s", rq.method, rq.path, r.status, r.body)
		}
	}
	r := ts.do(req{method: "GET", path: "/api/v1/health", header: map[string]string{"X-Forwarded-Proto": "https", "X-Request-ID": "lb-abc-123"}})
	if r.header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS behind a trusted HTTPS proxy")
	}
	if r.header.Get("X-Request-ID") != "lb-abc-123" {
		t.Errorf("incoming request id not kept: %q", r.header.Get("X-Request-ID"))
	}
	r = ts.do(req{method: "GET", path: "/api/v1/health", header: map[string]string{"X-Request-ID": "bad id\twith spaces"}})
	if id := r.header.Get("X-Request-ID"); strings.Contains(id, " ") {
		t.Errorf("malformed request id echoed: %q", id)
	}
}

// TestPanicBecomesOpaque500 runs the middleware around a panicking handler.
func TestPanicBecomesOpaque500(t *testing.T) {
	dsn, st, _ := testDB(t)
	s, err := New(Options{Config: testConfig(t, dsn), Store: st, Hasher: cheapHasher(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.instrument(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret detail: password=hunter2") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 500 || strings.Contains(string(body), "hunter2") || !strings.Contains(string(body), `"code":"internal"`) {
		t.Fatalf("%d %s", rec.Code, body)
	}
	if rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Fatal("no security headers on the 500")
	}
}

// TestHealthWhenDatabaseIsGone answers 503 unhealthy, and readiness fails, once the database
// disappears.
func TestHealthWhenDatabaseIsGone(t *testing.T) {
	c := pgtest.Shared(t)
	name := dbName(t, "doomed")
	c.Exec(t, "CREATE DATABASE "+name)
	dsn := c.DSN(name)
	ctx := t.Context()
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn, store.Options{ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ts := startServerOn(t, dsn, st, nil)
	mustStatus(t, ts.do(req{method: "GET", path: "/api/v1/health"}), http.StatusOK)

	c.Exec(t, "DROP DATABASE "+name+" WITH (FORCE)")
	r := ts.do(req{method: "GET", path: "/api/v1/health"})
	mustStatus(t, r, http.StatusServiceUnavailable)
	var h api.Health
	r.decode(t, &h)
	if h.Status != "unhealthy" || h.Checks["database"] != "unhealthy" || r.header.Get("Retry-After") == "" {
		t.Fatalf("health %s", r.body)
	}
	if strings.Contains(string(r.body), name) {
		t.Fatal("health leaks database details")
	}
	r = ts.do(req{method: "POST", path: "/api/v1/auth/login", body: api.LoginRequest{Username: "a", Password: "b"}})
	if r.status != http.StatusServiceUnavailable || r.errorCode() != codeDatabaseUnavailable || strings.Contains(string(r.body), "SQLSTATE") {
		t.Fatalf("login with the database gone: %d %s", r.status, r.body)
	}
	if v := ts.metricValue(`pganalytics_api_db_errors_total{op="ping"}`); v != "1" {
		t.Fatalf("db errors %q", v)
	}
	// The probes: unready (out of rotation) but alive (no restart for the database's outage).
	r = ts.do(req{method: "GET", path: "/api/v1/health/ready"})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"unavailable"`) {
		t.Fatalf("readiness with the database gone: %d %s", r.status, r.body)
	}
	mustStatus(t, ts.do(req{method: "GET", path: "/api/v1/health/live"}), http.StatusOK)
}

// TestMetricsExposition checks the names the seed's alert rules use, after traffic and a push.
func TestMetricsExposition(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.RateLimitPerMinute = 5 })
	reg := ts.register("exposed")
	mustStatus(t, ts.push(reg.Token, gzipJSON(t, samplePush(10)), true), http.StatusAccepted)
	ts.do(req{method: "GET", path: "/api/v1/users", token: "forged"})
	for range 6 {
		ts.do(req{method: "GET", path: "/api/v1/health"})
	}
	r := ts.do(req{method: "GET", path: "/metrics", header: map[string]string{"X-Forwarded-For": "ignored"}})
	if r.status == http.StatusTooManyRequests {
		// The scrape shares the loopback bucket; use the collector's own bucket instead.
		r = ts.do(req{method: "GET", path: "/metrics", token: reg.Token})
	}
	mustStatus(t, r, http.StatusOK)
	body := string(r.body)
	for _, want := range []string{
		`pganalytics_api_request_duration_seconds_bucket{code="202",route="POST /api/v1/metrics/push",le="0.5"}`,
		`pganalytics_api_auth_failures_total{reason="invalid_token"} 1`,
		`pganalytics_api_rate_limited_total{scope="ip"}`,
		`pganalytics_api_ingest_samples_total 10`,
		`pganalytics_api_ingest_errors_total{reason="invalid"} 0`,
		`pganalytics_collector_buffer_utilization_ratio{collector_id="` + reg.CollectorID + `"} 0.25`,
		`pganalytics_collector_collection_failures_total{collector_id="` + reg.CollectorID + `"} 2`,
		`pganalytics_collector_collections_total{collector_id="` + reg.CollectorID + `"} 100`,
		`process_resident_memory_bytes`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// TestRequestStatsFeedAlerts flushes this server's per-minute statistics and reads GET /alerts.
func TestRequestStatsFeedAlerts(t *testing.T) {
	ts := startServer(t)
	viewer := ts.userToken("viewer", api.RoleViewer)
	for range 7 {
		ts.do(req{method: "GET", path: "/api/v1/collectors", token: "bad"})
	}
	ts.srv.flushStats(t.Context(), time.Now())
	var requests, authFailures int64
	err := ts.pool.QueryRow(t.Context(), `SELECT sum(requests), sum(auth_failures) FROM request_stats WHERE server = $1`,
		ts.srv.Name()).Scan(&requests, &authFailures)
	if err != nil {
		t.Fatal(err)
	}
	if requests < 8 || authFailures != 7 {
		t.Fatalf("request_stats: %d requests, %d auth failures", requests, authFailures)
	}
	// The background evaluation (every 200 ms here) fires the shipped FailedAuthHigh rule.
	var (
		ar api.AlertsResponse
		a  api.Alert
	)
	waitFor(t, func() bool {
		r := ts.do(req{method: "GET", path: "/api/v1/alerts", token: viewer})
		mustStatus(t, r, http.StatusOK)
		ar = api.AlertsResponse{}
		r.decode(t, &ar)
		for _, x := range ar.Alerts {
			if x.Name == "FailedAuthHigh" {
				a = x
				return true
			}
		}
		return false
	})
	if ar.EvaluatedAt.IsZero() || a.Name != "FailedAuthHigh" || a.State != "firing" || !a.Firing || a.Since == nil ||
		a.Value < 7 || a.Threshold != 5 || a.RunbookURL != "docs/alerts/FailedAuthHigh.md" || !strings.Contains(a.Summary, "failed authentication") {
		t.Fatalf("alerts %+v", ar)
	}
}

// TestGracefulShutdownFinishesPush starts a push, shuts the server down while its body is still
// arriving, and expects the push to complete and be stored.
func TestGracefulShutdownFinishesPush(t *testing.T) {
	ts := startServer(t)
	reg := ts.register("inflight")
	body := gzipJSON(t, samplePush(200))
	pr, pw := io.Pipe()
	hr, err := http.NewRequest("POST", ts.url+"/api/v1/metrics/push", pr)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+reg.Token)
	hr.Header.Set("Content-Encoding", "gzip")
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := ts.client.Do(hr)
		if err != nil {
			done <- result{err: err}
			return
		}
		res.Body.Close()
		done <- result{status: res.StatusCode}
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.metricValue(`pganalytics_api_requests_in_flight`) == "2" }) // the push and this scrape
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	waitFor(t, func() bool { // the listener is closed: new connections are refused
		_, err := http.Get(ts.url + "/api/v1/health")
		return err != nil
	})
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	res := <-done
	if res.err != nil || res.status != http.StatusAccepted {
		t.Fatalf("in-flight push: %d %v", res.status, res.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := ts.sampleCount(reg.CollectorID); n != 200 {
		t.Fatalf("stored %d samples, want 200", n)
	}
}

// waitFor polls cond (no fixed sleeps: the condition decides).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met within 20s")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
