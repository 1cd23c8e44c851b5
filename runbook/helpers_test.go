package runbook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// fakeAPI imitates the parts of /api/v1 the built-in checks use. It is an HTTP peer, not a mock of
// our code: the checks talk to it over real sockets with the real client.
type fakeAPI struct {
	status        string // health status
	secret        string // registration secret
	user, pass    string
	samples       int
	omitHeaders   bool
	rateLimited   int // the next rateLimited health requests get 429 with Retry-After: 1
	registrations int
	deletions     int
	evaluatedAt   time.Time // of GET /alerts
	amMissing     bool      // the second Alertmanager never holds the test alert
	mu            sync.Mutex
}

func (f *fakeAPI) server(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		limited := f.rateLimited > 0
		if limited {
			f.rateLimited--
		}
		f.mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, api.Error{Error: api.ErrorDetail{Code: "rate_limited", Message: "slow down"}})
			return
		}
		code := http.StatusOK
		if f.status != "healthy" {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, api.Health{Status: f.status, Uptime: 42, Version: "3.2.0",
			Checks: map[string]string{"database": f.status, "cache": "healthy"}})
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, api.AlertsResponse{EvaluatedAt: f.evaluatedAt, Alerts: []api.Alert{{Name: "X", State: "firing"}}})
	})
	ams := func() []api.AlertmanagerResult {
		r := []api.AlertmanagerResult{{URL: "http://am1", OK: true}, {URL: "http://am2", OK: !f.amMissing}}
		if f.amMissing {
			r[1].Error = "not received (yet)"
		}
		return r
	}
	mux.HandleFunc("POST /api/v1/alerts/test", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusAccepted, api.AlertTest{ID: "0123456789abcdef0123456789abcdef", Alertmanagers: ams()})
	})
	mux.HandleFunc("GET /api/v1/alerts/test/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.AlertTest{ID: r.PathValue("id"), Alertmanagers: ams()})
	})
	mux.HandleFunc("DELETE /api/v1/alerts/test/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.AlertTest{ID: r.PathValue("id"), Alertmanagers: ams()})
	})
	mux.HandleFunc("POST /api/v1/collectors/register", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Registration-Secret") != f.secret {
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: api.ErrorDetail{Code: "unauthorized", Message: "bad secret"}})
			return
		}
		var req api.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorDetail{Code: "bad_request", Message: "name"}})
			return
		}
		f.mu.Lock()
		f.registrations++
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, api.RegisterResponse{CollectorID: "c-1", Token: "collector-token-value", Name: req.Name, Hostname: req.Hostname})
	})
	mux.HandleFunc("DELETE /api/v1/collectors/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer access-token" || r.PathValue("id") != "c-1" {
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: api.ErrorDetail{Code: "unauthorized"}})
			return
		}
		f.mu.Lock()
		f.deletions++
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var req api.LoginRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Username != f.user || req.Password != f.pass {
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: api.ErrorDetail{Code: "unauthorized", Message: "invalid credentials"}})
			return
		}
		writeJSON(w, http.StatusOK, api.TokenPair{AccessToken: "access-token", RefreshToken: "refresh", TokenType: "Bearer", ExpiresIn: 900, Role: "admin"})
	})
	mux.HandleFunc("GET /api/v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer access-token" {
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: api.ErrorDetail{Code: "unauthorized"}})
			return
		}
		var resp api.MetricsResponse
		for i := range f.samples {
			resp.Samples = append(resp.Samples, api.MetricSample{Timestamp: time.Now().Add(-time.Duration(i) * time.Second),
				CollectorID: "c-1", Name: "pg_up", Value: 1})
		}
		writeJSON(w, http.StatusOK, resp)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.omitHeaders {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", "default-src 'none'")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Request-ID", "req-1")
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// envTOML renders an environment file: vars sorted, values quoted as TOML literal-safe basic strings.
func envTOML(loopback bool, vars map[string]string, commands map[string]string) string {
	var b strings.Builder
	if loopback {
		b.WriteString("loopback_only = true\n")
	}
	b.WriteString("[vars]\n")
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + " = " + tomlString(vars[k]) + "\n")
	}
	if len(commands) > 0 {
		b.WriteString("[commands]\n")
		for k, v := range commands {
			b.WriteString(k + " = " + tomlString(v) + "\n")
		}
	}
	return b.String()
}

func tomlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustEnv(t *testing.T, loopback bool, vars, commands map[string]string) *Environment {
	t.Helper()
	dir := t.TempDir()
	env, err := ParseEnvironment(filepath.Join(dir, "test-env.toml"), []byte(envTOML(loopback, vars, commands)), dir)
	if err != nil {
		t.Fatalf("environment: %v", err)
	}
	return env
}

func mustParse(t *testing.T, src string) *Runbook {
	t.Helper()
	rb, err := Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("parse runbook: %v", err)
	}
	return rb
}

// recorder keeps every event; safe for the engine's calls.
type recorder struct {
	mu     sync.Mutex
	events []Event
	hook   func(Event)
}

func (r *recorder) on(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if r.hook != nil {
		r.hook(ev)
	}
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Kind == EventOutput {
			out = append(out, ev.Line)
		}
	}
	return out
}

// answers is a Confirmer replaying fixed replies per prompt kind and counting the prompts.
type answers struct {
	mu      sync.Mutex
	replies map[PromptKind][]Reply
	asked   map[PromptKind]int
}

func (a *answers) Confirm(_ context.Context, p Prompt) (Reply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.asked == nil {
		a.asked = map[PromptKind]int{}
	}
	n := a.asked[p.Kind]
	a.asked[p.Kind]++
	rs := a.replies[p.Kind]
	if len(rs) == 0 {
		return Reply{Decision: Abort}, nil
	}
	if n >= len(rs) {
		n = len(rs) - 1
	}
	r := rs[n]
	if p.Kind == PromptDestructive && r.Decision == Proceed && r.Typed == "<id>" {
		r.Typed = p.Step.ID
	}
	return r, nil
}

func newTestEngine(t *testing.T, rb *Runbook, env *Environment, opts Options) *Engine {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.Operator = "tester"
	e, err := NewEngine(rb, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.killGrace = 200 * time.Millisecond // commands that ignore SIGTERM need not hold tests up
	return e
}

func stepStatuses(st *RunState) map[string]Status {
	m := map[string]Status{}
	for _, s := range st.Steps {
		m[s.Step] = s.Status
	}
	return m
}

func readAuditFile(t *testing.T, e *Engine, id string) []AuditRecord {
	t.Helper()
	recs, err := e.Store().ReadAudit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func stepRecords(recs []AuditRecord, step string) []AuditRecord {
	var out []AuditRecord
	for _, r := range recs {
		if r.Event == AuditStep && r.Step == step {
			out = append(out, r)
		}
	}
	return out
}

// refsIn lists the references in s, in order.
func refsIn(s string) []string {
	var refs []string
	_, _ = expand(s, func(ref string) (string, error) {
		refs = append(refs, ref)
		return "", nil
	})
	return refs
}
