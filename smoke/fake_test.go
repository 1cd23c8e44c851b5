package smoke

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// fakeOpts are the misconfigurations the fake API can imitate; the zero value is a correct server.
type fakeOpts struct {
	noFrameOptions       bool
	headersOnlyOnSuccess bool
	noHSTS               bool
	noRateLimit          bool
	noRetryAfter         bool
	sqlInErrors          bool // a malformed login answers with SQL text
	stackIn404           bool
	crashOnBadLimit      bool // a non-numeric limit answers 500
	viewerReadsConfig    bool
	refreshReusable      bool
	corsWildcard         bool
	acceptAnySecret      bool
	staleCollector       bool
	enumerableLogin      bool
	healthStatus         string
}

const (
	fakeAdmin, fakeAdminPassword   = "admin", "admin-password-123"
	fakeViewer, fakeViewerPassword = "viewer", "viewer-password-123"
	fakeCollectorID                = "6f1c1d0e-8a8b-4c3e-9a55-0d8f4f8e2b11"
	fakeRegistrationSecret         = "registration-secret-0123456789abcdef"
	fakeAllowedOrigin              = "https://console.example.com"
	fakeRateLimit                  = 100
)

// fakeAPI imitates the pgAnalytics API closely enough for every smoke check: it is the "HTTP peer
// imitating misbehaviour" the team rules allow, not a stand-in for the real server's tests.
type fakeAPI struct {
	opts     fakeOpts
	mu       sync.Mutex
	requests int
	next     int
	access   map[string]string // access token -> role
	refresh  map[string]string // live refresh token -> username
}

func newFakeAPI(opts fakeOpts) *fakeAPI {
	return &fakeAPI{opts: opts, access: map[string]string{}, refresh: map[string]string{}}
}

func (f *fakeAPI) writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: api.ErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ServeHTTP applies the cross-cutting behaviour (rate limit, headers, CORS) and routes.
func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.mu.Unlock()
	h := w.Header()
	if !f.opts.noRateLimit && n > fakeRateLimit {
		if !f.opts.noRetryAfter {
			h.Set("Retry-After", "60")
		}
		h.Set("X-RateLimit-Limit", strconv.Itoa(fakeRateLimit))
		f.writeError(w, http.StatusTooManyRequests, "rate_limited", "too many requests")
		return
	}
	if r.Method == http.MethodOptions {
		f.setHeaders(w, r, true)
		f.cors(w, r)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rec := &statusWriter{ResponseWriter: w, fake: f, r: r}
	f.mux().ServeHTTP(rec, r)
}

// statusWriter sets the security headers just before the status line, so a handler's status decides
// whether "headersOnlyOnSuccess" leaves them out.
type statusWriter struct {
	http.ResponseWriter
	fake  *fakeAPI
	r     *http.Request
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.wrote = true
		s.fake.setHeaders(s.ResponseWriter, s.r, code < 400)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (f *fakeAPI) setHeaders(w http.ResponseWriter, r *http.Request, success bool) {
	if f.opts.headersOnlyOnSuccess && !success {
		return
	}
	h := w.Header()
	if !f.opts.noFrameOptions {
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	if r.TLS != nil && !f.opts.noHSTS {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

func (f *fakeAPI) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	switch {
	case f.opts.corsWildcard:
		w.Header().Set("Access-Control-Allow-Origin", "*")
	case origin == fakeAllowedOrigin:
		w.Header().Set("Access-Control-Allow-Origin", origin)
	default:
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Vary", "Origin")
}

func (f *fakeAPI) role(r *http.Request) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	const prefix = "Bearer "
	a := r.Header.Get("Authorization")
	if len(a) <= len(prefix) {
		return ""
	}
	return f.access[a[len(prefix):]]
}

func (f *fakeAPI) issue(username string) api.TokenPair {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	role := api.RoleViewer
	if username == fakeAdmin {
		role = api.RoleAdmin
	}
	acc, ref := fmt.Sprintf("acc-%d", f.next), fmt.Sprintf("ref-%d", f.next)
	f.access[acc] = role
	f.refresh[ref] = username
	return api.TokenPair{AccessToken: acc, RefreshToken: ref, TokenType: "Bearer", ExpiresIn: 900, Role: role}
}

func (f *fakeAPI) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		status := f.opts.healthStatus
		if status == "" {
			status = "healthy"
		}
		writeJSON(w, http.StatusOK, api.Health{Status: status, Uptime: 42, Version: "3.2.0-test", Checks: map[string]string{"database": status, "cache": "healthy"}})
	})
	m.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var req api.LoginRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			if f.opts.sqlInErrors {
				f.writeError(w, http.StatusBadRequest, "bad_request", `ERROR: syntax error at or near "username" (SQLSTATE 42601) in SELECT id, password_hash FROM users WHERE username = $1`)
				return
			}
			f.writeError(w, http.StatusBadRequest, "bad_request", "malformed JSON body")
			return
		}
		known := map[string]string{fakeAdmin: fakeAdminPassword, fakeViewer: fakeViewerPassword}
		pw, ok := known[req.Username]
		if !ok && f.opts.enumerableLogin {
			f.writeError(w, http.StatusUnauthorized, "invalid_credentials", "no such user")
			return
		}
		if !ok || pw != req.Password {
			f.writeError(w, http.StatusUnauthorized, "invalid_credentials", "invalid username or password")
			return
		}
		writeJSON(w, http.StatusOK, f.issue(req.Username))
	})
	m.HandleFunc("POST /api/v1/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		var req api.RefreshRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			f.writeError(w, http.StatusBadRequest, "bad_request", "malformed JSON body")
			return
		}
		f.mu.Lock()
		user, ok := f.refresh[req.RefreshToken]
		if ok && !f.opts.refreshReusable {
			delete(f.refresh, req.RefreshToken)
		}
		f.mu.Unlock()
		if !ok {
			f.writeError(w, http.StatusUnauthorized, "invalid_token", "invalid or expired refresh token")
			return
		}
		writeJSON(w, http.StatusOK, f.issue(user))
	})
	m.HandleFunc("POST /api/v1/auth/logout", func(w http.ResponseWriter, r *http.Request) {
		var req api.RefreshRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		delete(f.refresh, req.RefreshToken)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /api/v1/collectors/register", func(w http.ResponseWriter, r *http.Request) {
		if !f.opts.acceptAnySecret && r.Header.Get("X-Registration-Secret") != fakeRegistrationSecret {
			f.writeError(w, http.StatusUnauthorized, "unauthorized", "invalid registration secret")
			return
		}
		writeJSON(w, http.StatusCreated, api.RegisterResponse{CollectorID: "new", Token: "tok", TokenType: "Bearer"})
	})
	viewerPlus := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if f.role(r) == "" {
				f.writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
				return
			}
			next(w, r)
		}
	}
	m.HandleFunc("GET /api/v1/collectors", viewerPlus(func(w http.ResponseWriter, r *http.Request) {
		last := time.Now().Add(-10 * time.Second)
		if f.opts.staleCollector {
			last = time.Now().Add(-10 * time.Minute)
		}
		writeJSON(w, http.StatusOK, api.CollectorsResponse{Collectors: []api.Collector{
			{ID: fakeCollectorID, Name: "demo", Hostname: "h", Status: "active", LastPushAt: &last, IntervalSeconds: 30},
			{ID: "7a1c1d0e-8a8b-4c3e-9a55-0d8f4f8e2b12", Name: "spare", Hostname: "h2", Status: "never_pushed"},
		}})
	}))
	m.HandleFunc("GET /api/v1/collectors/{id}", viewerPlus(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != fakeCollectorID {
			f.writeError(w, http.StatusNotFound, "not_found", "collector not found")
			return
		}
		writeJSON(w, http.StatusOK, api.Collector{ID: fakeCollectorID})
	}))
	m.HandleFunc("GET /api/v1/users", func(w http.ResponseWriter, r *http.Request) {
		role := f.role(r)
		switch {
		case role == "":
			f.writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
		case role != api.RoleAdmin && !f.opts.viewerReadsConfig:
			f.writeError(w, http.StatusForbidden, "forbidden", "admin role required")
		default:
			writeJSON(w, http.StatusOK, map[string]any{"users": []api.User{{ID: "u1", Username: "admin", Role: api.RoleAdmin}}})
		}
	})
	m.HandleFunc("GET /api/v1/config/{id}", func(w http.ResponseWriter, r *http.Request) {
		role := f.role(r)
		switch {
		case role == "":
			f.writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
		case role != api.RoleAdmin && !f.opts.viewerReadsConfig:
			f.writeError(w, http.StatusForbidden, "forbidden", "admin role required")
		case r.PathValue("id") != fakeCollectorID:
			f.writeError(w, http.StatusNotFound, "not_found", "collector not found")
		default:
			writeJSON(w, http.StatusOK, api.CollectorConfig{CollectorID: fakeCollectorID, IntervalSeconds: 30})
		}
	})
	m.HandleFunc("GET /api/v1/metrics", viewerPlus(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, k := range []string{"since", "until"} {
			if v := q.Get(k); v != "" {
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					f.writeError(w, http.StatusBadRequest, "bad_request", k+" must be an RFC 3339 timestamp")
					return
				}
			}
		}
		if v := q.Get("limit"); v != "" {
			if _, err := strconv.Atoi(v); err != nil {
				if f.opts.crashOnBadLimit {
					f.writeError(w, http.StatusInternalServerError, "internal", "internal error")
					return
				}
				f.writeError(w, http.StatusBadRequest, "bad_request", "limit must be an integer")
				return
			}
		}
		var samples []api.MetricSample
		if q.Get("collector_id") == fakeCollectorID && q.Get("name") == "pg_up" {
			samples = append(samples, api.MetricSample{Timestamp: time.Now(), CollectorID: fakeCollectorID, Name: "pg_up", Value: 1})
		}
		writeJSON(w, http.StatusOK, api.MetricsResponse{Samples: samples})
	}))
	m.HandleFunc("POST /api/v1/metrics/push", func(w http.ResponseWriter, r *http.Request) {
		f.writeError(w, http.StatusUnauthorized, "unauthorized", "collector token required")
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if f.opts.stackIn404 {
			f.writeError(w, http.StatusNotFound, "not_found", "goroutine 17 [running]: main.route(0xc000010000) /app/server/routes.go:42")
			return
		}
		f.writeError(w, http.StatusNotFound, "not_found", "no such route")
	})
	return m
}

// testPKI is a throwaway CA and the PEM file trusting it.
type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smoke test CA"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(5 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, caKey: key, caFile: caFile}
}

// leaf issues a server certificate for 127.0.0.1 valid in [notBefore, notAfter].
func (p *testPKI) leaf(t *testing.T, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pganalytics-api.test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
