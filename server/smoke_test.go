package server

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/devca"
	"github.com/pganalytics/pganalytics/server/config"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.IssueServer("api", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return p.CertFile, p.KeyFile
}

// TestSeedPhase2Smoke walks the deployment plan's Phase 2 steps 2, 4, 5 and 7 and Phase 3 step 4
// against a production-configured server over TLS on real PostgreSQL.
func TestSeedPhase2Smoke(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	ts := startServer(t, func(c *config.Config) {
		c.Environment = config.Production
		c.TLS = config.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile}
		c.RateLimitPerMinute = 100
		// Loopback is the "load balancer" so the rate-limit step can present its own client address.
		c.TrustedProxies = []string{"127.0.0.1"}
	})

	// Phase 2 step 2 / Phase 3 step 4: health JSON and security headers.
	r := ts.do(req{method: "GET", path: "/api/v1/health"})
	mustStatus(t, r, http.StatusOK)
	var h map[string]any
	r.decode(t, &h)
	if h["status"] != "healthy" || h["version"] != "test" {
		t.Fatalf("health %s", r.body)
	}
	if _, ok := h["uptime"].(float64); !ok {
		t.Fatalf("uptime not a number: %s", r.body)
	}
	checks, _ := h["checks"].(map[string]any)
	if checks["database"] != "healthy" || checks["cache"] != "healthy" {
		t.Fatalf("checks %s", r.body)
	}
	for k, want := range map[string]string{
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"X-Frame-Options":           "DENY",
		"X-Content-Type-Options":    "nosniff",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"Referrer-Policy":           "no-referrer",
		"Content-Type":              "application/json",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if r.header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}

	// TLS 1.2 is the floor.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.url, "https://"), &tls.Config{
		InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, //nolint:gosec // probing the server's floor
	})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}

	// Step 4: collector registration.
	reg := ts.register("staging-collector-01")
	if reg.CollectorID == "" || reg.Token == "" || reg.TokenType != "Bearer" || reg.Hostname != "staging-collector-01.example" {
		t.Fatalf("register: %+v", reg)
	}

	// Step 5: a push, then the seed's SQL and the API read it back.
	mustStatus(t, ts.push(reg.Token, gzipJSON(t, samplePush(50)), true), http.StatusAccepted)
	if n := ts.sampleCount(reg.CollectorID); n != 50 {
		t.Fatalf("SELECT COUNT(*) FROM metrics: %d, want 50", n)
	}

	// Step 7: login, RBAC, rate limiting.
	ts.addUser("admin", api.RoleAdmin)
	admin := ts.login("admin")
	if admin.TokenType != "Bearer" || admin.Role != api.RoleAdmin || admin.ExpiresIn != 900 || admin.RefreshToken == "" {
		t.Fatalf("login: %+v", admin)
	}
	r = ts.do(req{method: "POST", path: "/api/v1/users", token: admin.AccessToken,
		body: api.CreateUserRequest{Username: "viewer", Password: testPassword, Role: api.RoleViewer}})
	mustStatus(t, r, http.StatusCreated)
	viewer := ts.login("viewer").AccessToken

	r = ts.do(req{method: "GET", path: "/api/v1/metrics?collector_id=" + reg.CollectorID, token: viewer})
	mustStatus(t, r, http.StatusOK)
	var mr api.MetricsResponse
	r.decode(t, &mr)
	if len(mr.Samples) != 50 {
		t.Fatalf("GET /metrics: %d samples, want 50", len(mr.Samples))
	}

	r = ts.do(req{method: "GET", path: "/api/v1/config/" + reg.CollectorID, token: viewer})
	mustStatus(t, r, http.StatusForbidden)
	r = ts.do(req{method: "GET", path: "/api/v1/config/collector-id", token: viewer})
	mustStatus(t, r, http.StatusForbidden)
	r = ts.do(req{method: "GET", path: "/api/v1/config/" + reg.CollectorID, token: admin.AccessToken})
	mustStatus(t, r, http.StatusOK)

	// for i in {1..101}; do curl …/health; done — from one client address: the 101st is refused.
	client := map[string]string{"X-Forwarded-For": "203.0.113.7"}
	for i := 1; i <= 100; i++ {
		r = ts.do(req{method: "GET", path: "/api/v1/health", header: client})
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	r = ts.do(req{method: "GET", path: "/api/v1/health", header: client})
	mustStatus(t, r, http.StatusTooManyRequests)
	if r.errorCode() != codeRateLimited || r.header.Get("Retry-After") == "" ||
		r.header.Get("X-RateLimit-Limit") != "100" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers %v body %s", r.header, r.body)
	}
	if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("Strict-Transport-Security") == "" {
		t.Fatal("429 without security headers")
	}
	// Another client is not affected.
	r = ts.do(req{method: "GET", path: "/api/v1/health", header: map[string]string{"X-Forwarded-For": "203.0.113.8"}})
	mustStatus(t, r, http.StatusOK)
}
