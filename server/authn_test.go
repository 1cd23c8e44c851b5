package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/config"
)

func forgeToken(t *testing.T, m jwt.SigningMethod, key any, c auth.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHostileTokens presents forged, expired and misused tokens to the real server.
func TestHostileTokens(t *testing.T) {
	ts := startServer(t)
	admin := ts.addUser("admin", api.RoleAdmin)
	pair := ts.login("admin")
	reg := ts.register("tokens")
	other := ts.register("tokens-other")
	claims := func(aud string, exp time.Time) auth.Claims {
		return auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: auth.Issuer, Subject: admin.ID, ID: "forged", Audience: jwt.ClaimStrings{aud},
				IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(exp),
			},
			Name: "admin", Role: api.RoleAdmin,
		}
	}
	later := time.Now().Add(time.Hour)
	users := "/api/v1/users"
	push := []byte(pushJSON(goodSample))

	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
		code   string
	}{
		{"no token", "GET", users, "", nil, 401, codeUnauthorized},
		{"alg none", "GET", users, forgeToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(auth.AudienceAccess, later)), nil, 401, codeInvalidToken},
		{"HS512", "GET", users, forgeToken(t, jwt.SigningMethodHS512, []byte(testJWTSecret), claims(auth.AudienceAccess, later)), nil, 401, codeInvalidToken},
		{"wrong key", "GET", users, forgeToken(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123"), claims(auth.AudienceAccess, later)), nil, 401, codeInvalidToken},
		{"expired", "GET", users, forgeToken(t, jwt.SigningMethodHS256, []byte(testJWTSecret), claims(auth.AudienceAccess, time.Now().Add(-time.Minute))), nil, 401, codeTokenExpired},
		{"wrong audience", "GET", users, forgeToken(t, jwt.SigningMethodHS256, []byte(testJWTSecret), claims("grafana", later)), nil, 401, codeInvalidToken},
		{"refresh token as bearer", "GET", users, pair.RefreshToken, nil, 401, codeInvalidToken},
		{"garbage", "GET", users, "not-a-jwt", nil, 401, codeInvalidToken},
		{"user token on push", "POST", "/api/v1/metrics/push", pair.AccessToken, push, 403, codeForbidden},
		{"collector token on users", "GET", users, reg.Token, nil, 403, codeForbidden},
		{"collector token on collectors", "GET", "/api/v1/collectors", reg.Token, nil, 403, codeForbidden},
		{"collector token on metrics", "GET", "/api/v1/metrics", reg.Token, nil, 403, codeForbidden},
		{"collector token on another's config", "GET", "/api/v1/config/" + other.CollectorID, reg.Token, nil, 403, codeForbidden},
		{"collector token putting its config", "PUT", "/api/v1/config/" + reg.CollectorID, reg.Token, `{"interval_seconds":10,"query_timeout_seconds":5}`, 403, codeForbidden},
		{"collector token of an unknown collector", "POST", "/api/v1/metrics/push", forgeToken(t, jwt.SigningMethodHS256, []byte(testJWTSecret), claims(auth.AudienceCollector, later)), push, 401, codeTokenRevoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(req{method: tc.method, path: tc.path, token: tc.token, body: tc.body})
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("collector reads its own config", func(t *testing.T) {
		r := ts.do(req{method: "GET", path: "/api/v1/config/" + reg.CollectorID, token: reg.Token})
		mustStatus(t, r, http.StatusOK)
		var cfg api.CollectorConfig
		r.decode(t, &cfg)
		if cfg.CollectorID != reg.CollectorID || cfg.IntervalSeconds != 10 || !cfg.PgReplicationEnabled || cfg.QueryTimeoutSeconds != 5 {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("deregistration revokes the collector token", func(t *testing.T) {
		mustStatus(t, ts.push(reg.Token, push, false), http.StatusAccepted)
		mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/collectors/" + reg.CollectorID, token: pair.AccessToken}), http.StatusNoContent)
		r := ts.push(reg.Token, push, false)
		if r.status != http.StatusUnauthorized || r.errorCode() != codeTokenRevoked {
			t.Fatalf("push after deregistration: %d %s", r.status, r.body)
		}
		r = ts.do(req{method: "GET", path: "/api/v1/config/" + reg.CollectorID, token: reg.Token})
		mustStatus(t, r, http.StatusUnauthorized)
	})
	t.Run("failures are counted", func(t *testing.T) {
		if v := ts.metricValue(`pganalytics_api_auth_failures_total{reason="invalid_token"}`); v == "" || v == "0" {
			t.Fatalf("invalid_token failures = %q", v)
		}
		if v := ts.metricValue(`pganalytics_api_auth_failures_total{reason="expired_token"}`); v != "1" {
			t.Fatalf("expired_token failures = %q", v)
		}
	})
}

// TestRefreshRotation rotates a refresh token, then replays the old one: refused, and the whole
// family (including the newest token) is revoked.
func TestRefreshRotation(t *testing.T) {
	ts := startServer(t)
	ts.addUser("alice", api.RoleOperator)
	first := ts.login("alice")

	r := ts.do(req{method: "POST", path: "/api/v1/auth/refresh", body: api.RefreshRequest{RefreshToken: first.RefreshToken}})
	mustStatus(t, r, http.StatusOK)
	var second api.TokenPair
	r.decode(t, &second)
	if second.RefreshToken == first.RefreshToken || second.Role != api.RoleOperator || second.AccessToken == "" {
		t.Fatalf("rotation: %+v", second)
	}
	mustStatus(t, ts.do(req{method: "GET", path: "/api/v1/collectors", token: second.AccessToken}), http.StatusOK)

	r = ts.do(req{method: "POST", path: "/api/v1/auth/refresh", body: api.RefreshRequest{RefreshToken: first.RefreshToken}})
	if r.status != http.StatusUnauthorized || r.errorCode() != codeTokenReused {
		t.Fatalf("reuse: %d %s", r.status, r.body)
	}
	r = ts.do(req{method: "POST", path: "/api/v1/auth/refresh", body: api.RefreshRequest{RefreshToken: second.RefreshToken}})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("family not revoked: %d %s", r.status, r.body)
	}

	t.Run("logout revokes", func(t *testing.T) {
		p := ts.login("alice")
		mustStatus(t, ts.do(req{method: "POST", path: "/api/v1/auth/logout", token: p.AccessToken,
			body: api.RefreshRequest{RefreshToken: p.RefreshToken}}), http.StatusNoContent)
		r := ts.do(req{method: "POST", path: "/api/v1/auth/refresh", body: api.RefreshRequest{RefreshToken: p.RefreshToken}})
		mustStatus(t, r, http.StatusUnauthorized)
	})
	t.Run("logout of another user's refresh token", func(t *testing.T) {
		ts.addUser("bob", api.RoleViewer)
		bob := ts.login("bob")
		alice := ts.login("alice")
		r := ts.do(req{method: "POST", path: "/api/v1/auth/logout", token: bob.AccessToken,
			body: api.RefreshRequest{RefreshToken: alice.RefreshToken}})
		mustStatus(t, r, http.StatusForbidden)
	})
	t.Run("reuse is audited", func(t *testing.T) {
		// The replayed first token, the revoked second one, and the logged-out one.
		if n := auditCount(t, ts, "refresh_reused"); n != 3 {
			t.Fatalf("refresh_reused audit rows %d", n)
		}
	})
}

func auditCount(t *testing.T, ts *testServer, action string) int {
	t.Helper()
	var n int
	if err := ts.pool.QueryRow(t.Context(), "SELECT count(*) FROM audit_log WHERE action = $1", action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLoginThrottling: a stranger's failed logins lock the stranger's address, never the account
// for its owner elsewhere (the probe: five failures from any address used to lock an admin for 15
// minutes, renewable forever); the per-account lock is a last resort that the right password from
// an address the account logged in from before passes; every refusal gets the same answer and an
// audit row; unlocking is audited.
func TestLoginThrottling(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Auth.LoginMaxFailures, c.Auth.LoginMaxFailuresPerAddress, c.Auth.LoginMaxFailuresPerAccount = 3, 5, 8
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	ts.addUser("carol", api.RoleAdmin)
	login := func(user, pw, from string) response {
		return ts.do(req{method: "POST", path: "/api/v1/auth/login", body: api.LoginRequest{Username: user, Password: pw},
			header: map[string]string{"X-Forwarded-For": from}})
	}
	const home, attacker = "198.51.100.10", "203.0.113.66"
	mustStatus(t, login("carol", testPassword, home), http.StatusOK)

	var answers []string
	answer := func(r response) {
		t.Helper()
		mustStatus(t, r, http.StatusUnauthorized)
		answers = append(answers, r.errorCode()+"/"+r.errorMessage())
	}
	for range 3 {
		answer(login("carol", "wrong password", attacker))
	}
	answer(login("carol", testPassword, attacker)) // (carol, attacker) is locked: even the right password
	t.Run("the owner elsewhere is not locked out", func(t *testing.T) {
		mustStatus(t, login("carol", testPassword, home), http.StatusOK)
		mustStatus(t, login("carol", testPassword, "192.0.2.44"), http.StatusOK)
	})
	t.Run("an address guessing many names is locked for all of them", func(t *testing.T) {
		answer(login("nobody", "x", attacker))
		answer(login("someone", "x", attacker)) // the fifth failure from the address
		ts.addUser("dave", api.RoleViewer)
		answer(login("dave", testPassword, attacker))
		mustStatus(t, login("dave", testPassword, home), http.StatusOK)
	})
	t.Run("the account lock is a last resort a known address passes", func(t *testing.T) {
		for i := range 8 {
			answer(login("carol", "wrong password", fmt.Sprintf("192.0.2.%d", 100+i)))
		}
		answer(login("carol", testPassword, "192.0.2.200")) // never logged in from there
		mustStatus(t, login("carol", testPassword, home), http.StatusOK)
	})
	answer(login("", "", attacker))
	t.Run("a NUL in the name is refused before the store", func(t *testing.T) {
		r := ts.do(req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"bad\u0000name","password":"x"}`})
		if r.status != http.StatusBadRequest || r.errorMessage() != "username: contains a NUL character" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	for _, a := range answers {
		if a != answers[0] {
			t.Fatalf("answers differ: %q", answers)
		}
	}
	waitFor(t, func() bool { return auditCount(t, ts, "login_failed") >= len(answers) })
	if n := auditCount(t, ts, "login_failed"); n != len(answers) {
		t.Fatalf("login_failed audit rows %d, want %d", n, len(answers))
	}
	var throttled int
	if err := ts.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND detail->>'reason' = 'throttled'`).Scan(&throttled); err != nil || throttled != 2 {
		t.Fatalf("throttled rows %d, %v", throttled, err)
	}
	var passed int
	if err := ts.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'login' AND detail->>'passed_lock' = 'account'`).Scan(&passed); err != nil || passed != 1 {
		t.Fatalf("logins through the account lock %d, %v", passed, err)
	}
}
