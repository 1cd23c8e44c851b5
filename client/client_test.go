package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

func newTestClient(t *testing.T, h http.Handler) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func TestNewValidatesOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		wantURL string
	}{
		{"plain", Options{BaseURL: "http://127.0.0.1:8080"}, "", "http://127.0.0.1:8080"},
		{"trailing slash and prefix", Options{BaseURL: "https://api.example.com/pga/api/v1/"}, "", "https://api.example.com/pga"},
		{"empty", Options{}, "empty", ""},
		{"no scheme", Options{BaseURL: "127.0.0.1:8080"}, "base URL", ""},
		{"host only", Options{BaseURL: "api.example.com"}, "scheme", ""},
		{"ftp", Options{BaseURL: "ftp://h"}, "scheme", ""},
		{"credentials", Options{BaseURL: "http://u:p@h"}, "credentials", ""},
		{"query", Options{BaseURL: "http://h/?x=1"}, "query", ""},
		{"missing CA", Options{BaseURL: "http://h", CAFile: filepath.Join(dir, "nope.pem")}, "read CA file", ""},
		{"CA without PEM", Options{BaseURL: "http://h", CAFile: notPEM}, "no PEM certificate", ""},
		{"half client cert", Options{BaseURL: "http://h", CertFile: "c.pem"}, "both", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BaseURL() != tt.wantURL {
				t.Errorf("BaseURL = %q, want %q", c.BaseURL(), tt.wantURL)
			}
		})
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		wantCode  string
		wantMsg   string
		wantRetry time.Duration
	}{
		{"envelope", 401, nil, `{"error":{"code":"invalid_credentials","message":"invalid username or password"}}`, "invalid_credentials", "invalid username or password", 0},
		{"rate limited", 429, map[string]string{"Retry-After": "17"}, `{"error":{"code":"rate_limited","message":"slow down"}}`, "rate_limited", "slow down", 17 * time.Second},
		{"plain text", 502, nil, "<html>\n<body>Bad   Gateway</body>\n</html>", "bad_gateway", "<html> <body>Bad Gateway</body> </html>", 0},
		{"empty body", 404, nil, "", "not_found", "", 0},
		{"json without envelope", 400, nil, `{"detail":"x"}`, "bad_request", `{"detail":"x"}`, 0},
		{"unknown status", 599, nil, "", "http_599", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			_, err := c.Collectors(context.Background())
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.wantCode || apiErr.Message != tt.wantMsg || apiErr.RetryAfter != tt.wantRetry {
				t.Errorf("got %+v, want status %d code %q message %q retry %s", apiErr, tt.status, tt.wantCode, tt.wantMsg, tt.wantRetry)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Error("an HTTP answer must not be ErrUnreachable")
			}
		})
	}
}

func TestLongErrorBodyIsTruncated(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, strings.Repeat("x", 5000))
	}))
	_, err := c.Alerts(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatal(err)
	}
	if n := len([]rune(apiErr.Message)); n != maxMessageRunes+1 {
		t.Errorf("message has %d runes, want %d (truncated plus ellipsis)", n, maxMessageRunes+1)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"30", 30 * time.Second},
		{" 7 ", 7 * time.Second},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(72 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
		{"Fri, 27 Feb 2026 15:00:10 GMT", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnreachableOnClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New(Options{BaseURL: "http://" + addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"health":     func() error { _, err := c.Health(context.Background()); return err },
		"login":      func() error { _, err := c.Login(context.Background(), "a", "b"); return err },
		"raw":        func() error { _, err := c.Do(context.Background(), RawRequest{Path: "/api/v1/health"}); return err },
		"stream":     func() error { return c.StreamReplication(context.Background(), func(api.CollectorTopology) {}) },
		"collectors": func() error { _, err := c.Collectors(context.Background()); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				t.Errorf("err = %v: the transport cause should stay inspectable", err)
			}
		})
	}
}

func TestCancelledContextIsNotUnreachable(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Health(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want context.Canceled and not ErrUnreachable", err)
	}
}

func TestHealth503ReturnsBodyAndError(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"unhealthy","uptime":12,"version":"3.2.0","checks":{"database":"unhealthy"}}`)
	}))
	h, err := c.Health(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("err = %v, want a 503 *APIError", err)
	}
	if h.Status != "unhealthy" || h.Checks["database"] != "unhealthy" || h.Version != "3.2.0" {
		t.Errorf("health = %+v, want the decoded 503 body", h)
	}
	if apiErr.Message != "status unhealthy" {
		t.Errorf("message = %q", apiErr.Message)
	}
}

func TestTypedCalls(t *testing.T) {
	type seen struct {
		method, path, rawPath, query, auth, ctype, cenc, secret string
		body                                                    []byte
	}
	var got seen
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"),
			r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), r.Header.Get("X-Registration-Secret"), body}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/auth/login" || r.URL.Path == "/api/v1/auth/refresh":
			io.WriteString(w, `{"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":900,"role":"admin"}`)
		case r.URL.Path == "/api/v1/collectors/register":
			w.WriteHeader(201)
			io.WriteString(w, `{"collector_id":"c1","token":"t"}`)
		case r.URL.Path == "/api/v1/metrics/push":
			w.WriteHeader(202)
			io.WriteString(w, `{"accepted":3}`)
		case r.URL.Path == "/api/v1/metrics":
			io.WriteString(w, `{"samples":[{"collector_id":"c1","name":"pg_up","value":1}]}`)
		case r.Method == http.MethodDelete || r.URL.Path == "/api/v1/auth/logout":
			w.WriteHeader(204)
		case strings.HasPrefix(r.URL.Path, "/api/v1/config/"):
			io.WriteString(w, `{"collector_id":"c1","interval_seconds":30}`)
		case r.URL.Path == "/api/v1/audit":
			io.WriteString(w, `{"entries":[{"id":1,"action":"login"}]}`)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	ctx := context.Background()
	authed := c.WithToken("tok")

	tp, err := c.Login(ctx, "alice", "pw")
	if err != nil || tp.AccessToken != "a" || tp.Role != "admin" {
		t.Fatalf("login = %+v, %v", tp, err)
	}
	var lr api.LoginRequest
	if err := json.Unmarshal(got.body, &lr); err != nil || lr.Username != "alice" || lr.Password != "pw" || got.ctype != "application/json" || got.auth != "" {
		t.Errorf("login request = %+v (%s)", got, got.body)
	}

	if _, err := c.Refresh(ctx, "r0"); err != nil || !strings.Contains(string(got.body), `"refresh_token":"r0"`) {
		t.Errorf("refresh: %v, body %s", err, got.body)
	}
	if err := authed.Logout(ctx, "r1"); err != nil || got.auth != "Bearer tok" {
		t.Errorf("logout: %v, auth %q", err, got.auth)
	}
	rr, err := c.Register(ctx, "s3cret", api.RegisterRequest{Name: "n", Hostname: "h"})
	if err != nil || rr.CollectorID != "c1" || got.secret != "s3cret" {
		t.Errorf("register = %+v, %v, secret %q", rr, err, got.secret)
	}
	pr, err := c.WithToken("col").PushGzip(ctx, []byte{0x1f, 0x8b})
	if err != nil || pr.Accepted != 3 || got.cenc != "gzip" || got.ctype != "application/json" || got.auth != "Bearer col" || string(got.body) != "\x1f\x8b" {
		t.Errorf("push = %+v, %v, request %+v", pr, err, got)
	}
	since := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
	samples, err := authed.Metrics(ctx, MetricsQuery{CollectorID: "c1", Name: "pg_up", Since: since, Limit: 5})
	if err != nil || len(samples) != 1 || got.query != "collector_id=c1&limit=5&name=pg_up&since=2026-02-27T15%3A00%3A00Z" {
		t.Errorf("metrics = %v, %v, query %q", samples, err, got.query)
	}
	if _, err := authed.Config(ctx, "a/b c"); err != nil || got.rawPath != "/api/v1/config/a%2Fb%20c" {
		t.Errorf("config: %v, path %q: ids must be path-escaped", err, got.rawPath)
	}
	cfg, err := authed.PutConfig(ctx, api.CollectorConfig{CollectorID: "c1", IntervalSeconds: 30})
	if err != nil || got.method != http.MethodPut || cfg.IntervalSeconds != 30 {
		t.Errorf("put config = %+v, %v, method %s", cfg, err, got.method)
	}
	if err := authed.DeleteCollector(ctx, "c1"); err != nil || got.method != http.MethodDelete || got.path != "/api/v1/collectors/c1" {
		t.Errorf("delete collector: %v %s %s", err, got.method, got.path)
	}
	if err := authed.DeleteUser(ctx, ""); err == nil {
		t.Error("an empty id must be refused before any request")
	}
	entries, err := authed.Audit(ctx, 10)
	if err != nil || len(entries) != 1 || got.query != "limit=10" {
		t.Errorf("audit = %v, %v, query %q", entries, err, got.query)
	}
	if _, err := authed.Replication(ctx, "c1"); err != nil || got.query != "collector_id=c1" {
		t.Errorf("replication: %v, query %q", err, got.query)
	}
}

func TestMalformedSuccessBody(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"collectors":[`)
	}))
	_, err := c.Collectors(context.Background())
	if err == nil || !strings.Contains(err.Error(), "decode collectors") {
		t.Fatalf("err = %v, want a decode error", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
	}))
	_, err := c.Users(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusFound {
		t.Fatalf("err = %v, want a 302 *APIError", err)
	}
}

func TestCAFileTrustsServer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"healthy","uptime":1,"version":"v","checks":{}}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below is expected to fail
	srv.StartTLS()
	defer srv.Close()
	untrusted, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Health(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown CA: err = %v, want ErrUnreachable (TLS failure)", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	trusted, err := New(Options{BaseURL: srv.URL, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	h, err := trusted.Health(context.Background())
	if err != nil || h.Status != "healthy" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	resp, err := trusted.Do(context.Background(), RawRequest{Path: "/api/v1/health"})
	if err != nil || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("raw over TLS: %v, TLS state %v", err, resp.TLS)
	}
	if trusted.TLSConfig().RootCAs == nil {
		t.Error("TLSConfig lost the CA pool")
	}
}
