package server

// The hostile-input probes of the security review, each sent as it was to a real server: what
// each must be answered, and that it costs nothing lasting. What the bounded ones cost in CPU and
// memory is measured by the Hostile* benchmarks (hostile_bench_test.go).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/config"
)

func TestHostileInput(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.StreamsPerPrincipal, c.Limits.StreamsMax = 2, 3 })
	reg := ts.register("hostile")
	viewer := ts.userToken("eve", api.RoleViewer)
	now := time.Now().UTC().Format(time.RFC3339)
	withSnapshot := func(instance string) string {
		return `{"collected_at":"` + now + `","metrics":[` + goodSample + `],"snapshot":{"collected_at":"` + now +
			`","clusters":[{"system_identifier":"7","timeline":1,"instances":[` + instance + `],"standbys":[],"slots":[],"subscriptions":[]}]}}`
	}
	cases := []struct {
		name    string
		r       req
		status  int
		code    string
		message string
	}{
		// 1. Snapshot fields bounded by what PostgreSQL produces, the snapshot as a whole too.
		{"16 MiB system_identifier in a 16 KiB gzip body", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body:   gzipFill(t, `{"collected_at":"`+now+`","metrics":[`+goodSample+`],"snapshot":{"clusters":[{"system_identifier":"`, '7', 16<<20, `"}]}}`),
			header: map[string]string{"Content-Encoding": "gzip"}}, 413, codePayloadTooLarge, "snapshot exceeds 2097152 bytes"},
		{"system_identifier not a number", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(strings.Replace(withSnapshot(""), `"system_identifier":"7"`, `"system_identifier":"x7"`, 1))},
			400, codeValidation, "snapshot.clusters[0].system_identifier: must be a decimal number"},
		{"instance name longer than a PostgreSQL name", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(withSnapshot(`{"name":"` + strings.Repeat("n", 64) + `","address":"db:5432","up":true,"role":"primary"}`))},
			400, codeValidation, "snapshot.clusters[0].instances[0].name: longer than 63 bytes"},
		{"error text of 1 MiB", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(withSnapshot(`{"name":"db","address":"db:5432","up":false,"role":"unknown","error":"` + strings.Repeat("e", 1<<20) + `"}`))},
			400, codeValidation, "snapshot.clusters[0].instances[0].error: longer than 1024 bytes"},
		// 2. Whitespace inside a gzip body: refused at the value's bound, in linear time.
		{"16 MiB of whitespace between samples", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body:   gzipFill(t, `{"collected_at":"`+now+`","metrics":[`, ' ', 16<<20, goodSample+`]}`),
			header: map[string]string{"Content-Encoding": "gzip"}}, 413, codePayloadTooLarge, "metrics[0] exceeds 262144 bytes"},
		{"whitespace between members", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body:   gzipFill(t, `{"collected_at":"`+now+`",`, '\n', 4<<20, `"metrics":[`+goodSample+`]}`),
			header: map[string]string{"Content-Encoding": "gzip"}}, 413, codePayloadTooLarge, "the push body exceeds 1024 bytes"},
		// 5. NUL, which PostgreSQL text cannot hold, refused at the edge naming the field.
		{"NUL in a login name", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"ad\u0000min","password":"x"}`},
			400, codeValidation, "username: contains a NUL character"},
		{"NUL in a label value", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"instance":"db\u0000"}}`))}, 400, codeInvalidSample, "NUL"},
		{"NUL in a label name", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a\u0000":"v"}}`))}, 400, codeInvalidSample, "does not match"},
		{"NUL in a status field", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(`{"collected_at":"` + now + `","metrics":[` + goodSample + `],"status":{"version":"1\u0000","hostname":"h"}}`)},
			400, codeValidation, "status: version or hostname contains a NUL character"},
		{"NUL in a snapshot instance", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(withSnapshot(`{"name":"db\u0000","address":"db:5432","up":true,"role":"primary"}`))},
			400, codeValidation, "snapshot.clusters[0].instances[0].name: contains a NUL character"},
		{"NUL in a query parameter", req{method: "GET", path: "/api/v1/metrics?name=pg%00up", token: viewer},
			400, codeInvalidParameter, "without NUL"},
		{"NUL in a collector name", req{method: "POST", path: "/api/v1/collectors/register",
			header: map[string]string{"X-Registration-Secret": testRegistrationSecret}, body: `{"name":"c\u0000","hostname":"h"}`},
			400, codeValidation, "name: contains a NUL character"},
		// 9. Duplicate fields at every depth.
		{"duplicate field in a sample", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(pushJSON(`{"name":"pg_up","value":1,"name":"pg_down"}`))}, 400, codeMalformedJSON, `metrics[0]: duplicate field "name"`},
		{"duplicate label", req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token,
			body: []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":"1","a":"2"}}`))}, 400, codeMalformedJSON, `metrics[0]: duplicate field "a"`},
		{"duplicate field in a login", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"eve","password":"x","password":"y"}`},
			400, codeMalformedJSON, `duplicate field "password"`},
		{"login field in another case", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"eve","Password":"x"}`},
			400, codeMalformedJSON, `unknown field "Password"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.r)
			if r.status != tc.status || r.errorCode() != tc.code || !strings.Contains(r.errorMessage(), tc.message) {
				t.Fatalf("got %d %.300s, want %d %s containing %q", r.status, r.body, tc.status, tc.code, tc.message)
			}
		})
	}
	if got := ts.metricValue(`pganalytics_api_db_errors_total{op="ingest"}`); got != "" {
		t.Fatalf("hostile input reached the database as errors: %s", got)
	}

	// 3. Concurrent pushes of one collector: two at once, the third is told to wait.
	t.Run("a third concurrent push of one collector", func(t *testing.T) {
		release := make(chan struct{})
		for range 2 {
			go slowPush(t, ts, reg.Token, release)
		}
		waitFor(t, func() bool { return ts.metricValue("pganalytics_api_push_memory_bytes") != "0" })
		time.Sleep(100 * time.Millisecond) // both are inside the gate
		r := ts.push(reg.Token, []byte(pushJSON(goodSample)), false)
		close(release)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
			t.Fatalf("got %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
		}
	})

	// 6. A path with %00 in it: the denial is audited (the NUL spelt out), never dropped.
	t.Run("role_denied with a NUL in the path is audited", func(t *testing.T) {
		mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/users/x%00y", token: viewer}), http.StatusForbidden)
		var target string
		err := ts.pool.QueryRow(t.Context(), `SELECT target FROM audit_log WHERE action = 'role_denied' ORDER BY id DESC LIMIT 1`).Scan(&target)
		if err != nil || target != `DELETE /api/v1/users/x\x00y` {
			t.Fatalf("audit target %q, %v", target, err)
		}
		if got := ts.metricValue(`pganalytics_api_db_errors_total{op="audit"}`); got != "" {
			t.Fatalf("audit errors %s", got)
		}
	})

	// 7. Event streams capped per principal and per server.
	t.Run("streams are capped", func(t *testing.T) {
		var cancels []context.CancelFunc
		defer func() {
			for _, c := range cancels {
				c()
			}
		}()
		for range 2 {
			_, res, cancel := openStream(t, ts, viewer, "")
			cancels = append(cancels, cancel)
			mustStatusCode(t, res, http.StatusOK)
		}
		_, res, cancel := openStream(t, ts, viewer, "")
		cancels = append(cancels, cancel)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
			t.Fatalf("third stream of one viewer: %d", res.StatusCode)
		}
		other := ts.userToken("mallory", api.RoleViewer)
		_, res, cancel = openStream(t, ts, other, "")
		cancels = append(cancels, cancel)
		mustStatusCode(t, res, http.StatusOK)
		_, res, cancel = openStream(t, ts, other, "")
		cancels = append(cancels, cancel)
		if res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("fourth stream on the server: %d", res.StatusCode)
		}
	})
}

// slowPush starts a push whose body stalls until release, so that it holds its place in the gate.
func slowPush(t *testing.T, ts *testServer, token string, release <-chan struct{}) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample))
		<-release
		_, _ = pw.Write([]byte(`]}`))
		pw.Close()
	}()
	hr, _ := http.NewRequest("POST", ts.url+"/api/v1/metrics/push", pr)
	hr.Header.Set("Authorization", "Bearer "+token)
	if res, err := ts.client.Do(hr); err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

func mustStatusCode(t *testing.T, res *http.Response, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("status %d, want %d", res.StatusCode, want)
	}
}

// TestPushMemoryBudget fills the push memory budget with stalled pushes of two collectors: a third
// collector's push is answered 503 with Retry-After, and goes through once they are done.
func TestPushMemoryBudget(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PushMaxBytes, c.Limits.PushMaxDecompressedBytes, c.Limits.PushMemoryBytes = 1<<20, 1<<20, 2<<20
	})
	release := make(chan struct{})
	var done []chan struct{}
	for i := range 2 {
		reg := ts.register(fmt.Sprintf("big-%d", i))
		ch := make(chan struct{})
		done = append(done, ch)
		go func() {
			defer close(ch)
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write([]byte(pushJSON(manySamples(900 << 10)...)[:900<<10]))
				<-release
				pw.Close()
			}()
			hr, _ := http.NewRequest("POST", ts.url+"/api/v1/metrics/push", pr)
			hr.Header.Set("Authorization", "Bearer "+reg.Token)
			if res, err := ts.client.Do(hr); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	waitFor(t, func() bool {
		v := ts.metricValue("pganalytics_api_push_memory_bytes")
		var n float64
		fmt.Sscan(v, &n)
		return n >= 1.7*(1<<20)
	})
	third := ts.register("small")
	r := ts.push(third.Token, []byte(pushJSON(manySamples(400<<10)...)), false)
	if r.status != http.StatusServiceUnavailable || r.errorCode() != codeServerBusy || r.header.Get("Retry-After") != "2" {
		t.Fatalf("got %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	close(release)
	for _, ch := range done {
		<-ch
	}
	mustStatus(t, ts.push(third.Token, []byte(pushJSON(manySamples(400<<10)...)), false), http.StatusAccepted)
	if got := ts.metricValue(`pganalytics_api_push_busy_total{limit="memory"}`); got != "1" {
		t.Fatalf("push_busy memory = %q", got)
	}
}

// TestAuditFailsClosed makes the audit log refuse one action (a trigger, as a full disk or a lost
// grant would): the change is not made and the request is answered 503; the failure is counted.
func TestAuditFailsClosed(t *testing.T) {
	ts := startServer(t)
	admin := ts.userToken("root", api.RoleAdmin)
	_, err := ts.pool.Exec(t.Context(), `
		CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$;
		CREATE TRIGGER refuse_user_created BEFORE INSERT ON audit_log
		   FOR EACH ROW WHEN (NEW.action IN ('user_created', 'login', 'register')) EXECUTE FUNCTION refuse_audit();`)
	if err != nil {
		t.Fatal(err)
	}
	r := ts.do(req{method: "POST", path: "/api/v1/users", token: admin,
		body: api.CreateUserRequest{Username: "sneaky", Password: testPassword, Role: api.RoleAdmin}})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errorMessage(), "audit log") {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	var n int
	if err := ts.pool.QueryRow(t.Context(), `SELECT count(*) FROM users WHERE username = 'sneaky'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("user created without its audit entry (%d, %v)", n, err)
	}
	r = ts.do(req{method: "POST", path: "/api/v1/auth/login", body: api.LoginRequest{Username: "root", Password: testPassword}})
	if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "access_token") {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	r = ts.do(req{method: "POST", path: "/api/v1/collectors/register",
		header: map[string]string{"X-Registration-Secret": testRegistrationSecret}, body: api.RegisterRequest{Name: "ghost", Hostname: "h"}})
	if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "token") {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if err := ts.pool.QueryRow(t.Context(), `SELECT count(*) FROM collectors WHERE name = 'ghost' AND deleted_at IS NULL`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("collector registered without its audit entry (%d, %v)", n, err)
	}
	for _, action := range []string{"user_created", "login", "register"} {
		if got := ts.metricValue(`pganalytics_api_audit_failures_total{action="` + action + `"}`); got != "1" {
			t.Fatalf("audit failures for %s = %q", action, got)
		}
	}
}

// TestDeleteUserGuards: the same id in upper case is still oneself, and the last admin cannot be
// deleted by anyone (here by an admin whose own deletion its still-valid token outlived).
func TestDeleteUserGuards(t *testing.T) {
	ts := startServer(t)
	a := ts.addUser("admin-a", api.RoleAdmin)
	ts.addUser("admin-b", api.RoleAdmin)
	tokA, tokB := ts.login("admin-a").AccessToken, ts.login("admin-b").AccessToken
	r := ts.do(req{method: "DELETE", path: "/api/v1/users/" + strings.ToUpper(a.ID), token: tokA})
	if r.status != http.StatusConflict || !strings.Contains(r.errorMessage(), "your own user") {
		t.Fatalf("delete self in upper case: %d %s", r.status, r.body)
	}
	b, err := ts.store.UserByUsername(t.Context(), "admin-b")
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/users/" + a.ID, token: tokB}), http.StatusNoContent)
	r = ts.do(req{method: "DELETE", path: "/api/v1/users/" + strings.ToUpper(b.ID), token: tokA})
	if r.status != http.StatusConflict || !strings.Contains(r.errorMessage(), "last admin") {
		t.Fatalf("delete the last admin: %d %s", r.status, r.body)
	}
	if _, err := ts.store.UserByUsername(t.Context(), "admin-b"); err != nil {
		t.Fatalf("the last admin is gone: %v", err)
	}
}

// TestMetricsAccess: /metrics behind a bearer token, or on its own listener and not on the API's.
func TestMetricsAccess(t *testing.T) {
	const token = "scrape-token-0123456789abcdef"
	t.Run("bearer token", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Metrics.BearerToken = token })
		r := ts.do(req{method: "GET", path: "/metrics"})
		if r.status != http.StatusUnauthorized || r.errorCode() != codeUnauthorized {
			t.Fatalf("without the token: %d %s", r.status, r.body)
		}
		mustStatus(t, ts.do(req{method: "GET", path: "/metrics", token: "wrong-token-0123456789abcdef"}), http.StatusUnauthorized)
		r = ts.do(req{method: "GET", path: "/metrics", token: token})
		if r.status != http.StatusOK || !strings.Contains(string(r.body), "pganalytics_api_requests_in_flight") {
			t.Fatalf("with the token: %d", r.status)
		}
	})
	t.Run("separate listener", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ts := startServer(t, func(c *config.Config) { c.Metrics.ListenAddr = addr })
		mustStatus(t, ts.do(req{method: "GET", path: "/metrics"}), http.StatusNotFound)
		var res *http.Response
		waitFor(t, func() bool {
			res, err = http.Get("http://" + addr + "/metrics")
			return err == nil
		})
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "pganalytics_api_requests_in_flight") ||
			res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("metrics listener: %d", res.StatusCode)
		}
		res2, err := http.Get("http://" + addr + "/api/v1/health")
		if err != nil {
			t.Fatal(err)
		}
		res2.Body.Close()
		if res2.StatusCode != http.StatusNotFound {
			t.Fatalf("the metrics listener serves the API: %d", res2.StatusCode)
		}
	})
}

// TestPlainTextAnswersOfNetHTTP pins the answers Go's HTTP server writes itself, before any handler
// runs, which docs/api.md lists as the only non-JSON errors: if one of them changes, so must the
// documentation.
func TestPlainTextAnswersOfNetHTTP(t *testing.T) {
	ts := startServer(t)
	addr := strings.TrimPrefix(ts.url, "http://")
	cases := []struct {
		name, request, statusLine string
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no Host header", "GET /api/v1/health HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request: missing required Host header"},
		{"header block over 64 KiB", "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"unknown transfer encoding", "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: rot13\r\n\r\n", "HTTP/1.1 501 Not Implemented"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			line := fmt.Sprintf("HTTP/1.1 %s", res.Status)
			if line != tc.statusLine || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("%q with Content-Type %q", line, res.Header.Get("Content-Type"))
			}
		})
	}
	// Everything past the parser is JSON, even a request the router has no route for.
	r := ts.do(req{method: "GET", path: "/no/such/thing"})
	var e api.Error
	if r.status != http.StatusNotFound || json.Unmarshal(r.body, &e) != nil || e.Error.Code != codeNotFound {
		t.Fatalf("unmatched: %d %s", r.status, r.body)
	}
}
