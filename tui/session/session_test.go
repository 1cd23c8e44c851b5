package session

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/conn"
)

// server imitates the API's auth: tokens "access-N"/"refresh-N", a password "secret", and refresh
// tokens that work once. revoke makes every current access token fail with 401.
type server struct {
	mu       sync.Mutex
	n        int
	access   map[string]bool
	refresh  map[string]bool
	logins   atomic.Int32
	refreshs atomic.Int32
	logouts  atomic.Int32
	bearers  []string
}

func newServer(t *testing.T) (*server, *httptest.Server) {
	s := &server{access: map[string]bool{}, refresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		s.logins.Add(1)
		var req api.LoginRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "secret" {
			fail(w, http.StatusUnauthorized, "invalid credentials")
			return
		}
		s.issue(w)
	})
	mux.HandleFunc("POST /api/v1/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		s.refreshs.Add(1)
		var req api.RefreshRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		s.mu.Lock()
		ok := s.refresh[req.RefreshToken]
		delete(s.refresh, req.RefreshToken)
		s.mu.Unlock()
		if !ok {
			fail(w, http.StatusUnauthorized, "refresh token refused")
			return
		}
		s.issue(w)
	})
	mux.HandleFunc("POST /api/v1/auth/logout", func(w http.ResponseWriter, _ *http.Request) {
		s.logouts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/collectors", func(w http.ResponseWriter, r *http.Request) {
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		s.bearers = append(s.bearers, bearer)
		ok := s.access[bearer] || bearer == "static-token"
		s.mu.Unlock()
		if !ok {
			fail(w, http.StatusUnauthorized, "token expired")
			return
		}
		_ = json.NewEncoder(w).Encode(api.CollectorsResponse{Collectors: []api.Collector{{ID: "c1", Name: "one"}}})
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *server) issue(w http.ResponseWriter) {
	s.mu.Lock()
	s.n++
	pair := api.TokenPair{AccessToken: "access-" + itoa(s.n), RefreshToken: "refresh-" + itoa(s.n), TokenType: "Bearer", ExpiresIn: 900, Role: api.RoleOperator}
	s.access[pair.AccessToken], s.refresh[pair.RefreshToken] = true, true
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(pair)
}

func (s *server) revoke() {
	s.mu.Lock()
	s.access = map[string]bool{}
	s.mu.Unlock()
}

func itoa(n int) string { return string(rune('0' + n)) }

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Error: api.ErrorDetail{Code: "unauthorized", Message: msg}})
}

func newSession(t *testing.T, url, user, password, token string) *Session {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: url, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return New(c, user, password, token)
}

func TestLoginOnceForConcurrentRequests(t *testing.T) {
	srv, ts := newServer(t)
	s := newSession(t, ts.URL, "alice", "secret", "")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Collectors(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.logins.Load(); n != 1 {
		t.Errorf("%d logins for 8 concurrent requests, want 1", n)
	}
	id, err := s.Login(t.Context())
	if err != nil || id.User != "alice" || id.Role != api.RoleOperator {
		t.Errorf("identity %+v, %v; want alice the operator", id, err)
	}
}

func TestTokenLifecycle(t *testing.T) {
	tests := []struct {
		name         string
		prepare      func(s *Session, srv *server, clock *time.Time)
		wantLogins   int32
		wantRefreshs int32
	}{
		{"a valid token is reused", func(*Session, *server, *time.Time) {}, 1, 0},
		{"an expiring token is refreshed", func(_ *Session, _ *server, clock *time.Time) { *clock = clock.Add(880 * time.Second) }, 1, 1},
		{"a 401 refreshes and retries", func(_ *Session, srv *server, _ *time.Time) { srv.revoke() }, 1, 1},
		{"a refused refresh logs in again", func(s *Session, srv *server, _ *time.Time) {
			srv.revoke()
			srv.mu.Lock()
			srv.refresh = map[string]bool{}
			srv.mu.Unlock()
		}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ts := newServer(t)
			s := newSession(t, ts.URL, "alice", "secret", "")
			clock := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
			s.now = func() time.Time { return clock }
			if _, err := s.Collectors(t.Context()); err != nil {
				t.Fatal(err)
			}
			tt.prepare(s, srv, &clock)
			list, err := s.Collectors(t.Context())
			if err != nil || len(list) != 1 {
				t.Fatalf("second request: %v, %v", list, err)
			}
			if got := srv.logins.Load(); got != tt.wantLogins {
				t.Errorf("%d logins, want %d", got, tt.wantLogins)
			}
			if got := srv.refreshs.Load(); got != tt.wantRefreshs {
				t.Errorf("%d refreshes, want %d", got, tt.wantRefreshs)
			}
		})
	}
}

func TestRefusedLoginIsFinal(t *testing.T) {
	srv, ts := newServer(t)
	s := newSession(t, ts.URL, "alice", "wrong", "")
	for range 3 {
		_, err := s.Collectors(t.Context())
		if !errors.Is(err, conn.ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	}
	if n := srv.logins.Load(); n != 1 {
		t.Errorf("%d login attempts, want 1: a refused password is not retried", n)
	}
	if _, err := s.Login(t.Context()); !errors.Is(err, conn.ErrAuth) || s.AuthErr() == nil {
		t.Errorf("Login = %v, want ErrAuth", err)
	}
}

func TestUnreachableIsRetried(t *testing.T) {
	_, ts := newServer(t)
	url := ts.URL
	ts.Close()
	s := newSession(t, url, "alice", "secret", "")
	_, err := s.Collectors(t.Context())
	if !errors.Is(err, client.ErrUnreachable) || errors.Is(err, conn.ErrAuth) {
		t.Fatalf("err = %v, want unreachable and not an auth failure", err)
	}
	if s.AuthErr() != nil {
		t.Error("an unreachable API was taken for a refused login")
	}
}

func TestStaticToken(t *testing.T) {
	srv, ts := newServer(t)
	s := newSession(t, ts.URL, "", "", "static-token")
	if _, err := s.Collectors(t.Context()); err != nil {
		t.Fatal(err)
	}
	id, err := s.Login(t.Context())
	if err != nil || id.Role != "" || id.User != "token" {
		t.Errorf("identity %+v, %v; want an unknown role", id, err)
	}
	if srv.logins.Load() != 0 || srv.bearers[0] != "static-token" {
		t.Errorf("logins %d, bearer %q", srv.logins.Load(), srv.bearers[0])
	}
}

func TestLogout(t *testing.T) {
	srv, ts := newServer(t)
	s := newSession(t, ts.URL, "alice", "secret", "")
	if err := s.Logout(t.Context()); err != nil || srv.logouts.Load() != 0 {
		t.Fatalf("logout before login: %v, %d calls", err, srv.logouts.Load())
	}
	if _, err := s.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(t.Context()); err != nil || srv.logouts.Load() != 1 {
		t.Errorf("logout: %v, %d calls", err, srv.logouts.Load())
	}
}
