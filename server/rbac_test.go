package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pganalytics/pganalytics/internal/api"
)

// TestRoleMatrix checks every endpoint's role rule: admin > operator > viewer, collectors only push
// and read their own configuration, and every denial is audited.
func TestRoleMatrix(t *testing.T) {
	ts := startServer(t)
	tokens := map[string]string{
		"admin":    ts.userToken("admin", api.RoleAdmin),
		"operator": ts.userToken("operator", api.RoleOperator),
		"viewer":   ts.userToken("viewer", api.RoleViewer),
	}
	self := ts.register("matrix-self")
	tokens["collector"] = self.Token

	// Each row: the endpoint, then who is allowed; everyone else gets 403 (or 401 without a token).
	type row struct {
		method, path string
		body         func() any // a fresh, valid body (so only the role decides)
		allowed      []string
		status       int // success status
	}
	victims := 0
	victim := func() string { // a fresh collector to delete
		victims++
		return ts.register(fmt.Sprintf("victim-%d", victims)).CollectorID
	}
	users := 0
	newUser := func() any {
		users++
		return api.CreateUserRequest{Username: fmt.Sprintf("u%d", users), Password: testPassword, Role: api.RoleViewer}
	}
	rows := []row{
		{"GET", "/api/v1/health", nil, []string{"", "admin", "operator", "viewer", "collector"}, 200},
		{"GET", "/metrics", nil, []string{"", "admin", "operator", "viewer", "collector"}, 200},
		{"GET", "/api/v1/collectors", nil, []string{"admin", "operator", "viewer"}, 200},
		{"GET", "/api/v1/collectors/" + self.CollectorID, nil, []string{"admin", "operator", "viewer"}, 200},
		{"DELETE", "/api/v1/collectors/{victim}", nil, []string{"admin", "operator"}, 204},
		{"GET", "/api/v1/metrics?collector_id=" + self.CollectorID, nil, []string{"admin", "operator", "viewer"}, 200},
		{"GET", "/api/v1/config/" + self.CollectorID, nil, []string{"admin", "collector"}, 200},
		{"PUT", "/api/v1/config/" + self.CollectorID, func() any {
			return api.CollectorConfig{IntervalSeconds: 15, PgReplicationEnabled: true, QueryTimeoutSeconds: 5}
		}, []string{"admin"}, 200},
		{"GET", "/api/v1/replication", nil, []string{"admin", "operator", "viewer"}, 200},
		{"GET", "/api/v1/users", nil, []string{"admin"}, 200},
		{"POST", "/api/v1/users", newUser, []string{"admin"}, 201},
		{"GET", "/api/v1/audit", nil, []string{"admin"}, 200},
		{"GET", "/api/v1/alerts", nil, []string{"admin", "operator", "viewer"}, 200},
		{"POST", "/api/v1/metrics/push", func() any { return []byte(pushJSON(goodSample)) }, []string{"collector"}, 202},
	}
	denials := 0
	for _, rw := range rows {
		for _, who := range []string{"", "admin", "operator", "viewer", "collector"} {
			allowed := false
			for _, a := range rw.allowed {
				allowed = allowed || a == who
			}
			name := who
			if name == "" {
				name = "anonymous"
			}
			t.Run(rw.method+" "+rw.path+" as "+name, func(t *testing.T) {
				path := rw.path
				if strings.Contains(path, "{victim}") {
					path = strings.Replace(path, "{victim}", victim(), 1)
				}
				var body any
				if rw.body != nil {
					body = rw.body()
				}
				r := ts.do(req{method: rw.method, path: path, token: tokens[who], body: body})
				switch {
				case allowed:
					mustStatus(t, r, rw.status)
				case who == "":
					mustStatus(t, r, http.StatusUnauthorized)
				default:
					mustStatus(t, r, http.StatusForbidden)
					denials++
				}
			})
		}
	}
	if n := auditCount(t, ts, "role_denied"); n != denials {
		t.Fatalf("role_denied audit rows %d, want %d", n, denials)
	}
	if n := auditCount(t, ts, "config_changed"); n != 1 {
		t.Fatalf("config_changed audit rows %d", n)
	}
	t.Run("viewer cannot delete users", func(t *testing.T) {
		u := ts.addUser("target", api.RoleViewer)
		mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/users/" + u.ID, token: tokens["viewer"]}), http.StatusForbidden)
		mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/users/" + u.ID, token: tokens["admin"]}), http.StatusNoContent)
		mustStatus(t, ts.do(req{method: "DELETE", path: "/api/v1/users/" + u.ID, token: tokens["admin"]}), http.StatusNotFound)
	})
	t.Run("admin cannot delete itself", func(t *testing.T) {
		var users api.UsersResponse
		ts.do(req{method: "GET", path: "/api/v1/users", token: tokens["admin"]}).decode(t, &users)
		for _, u := range users.Users {
			if u.Username == "admin" {
				r := ts.do(req{method: "DELETE", path: "/api/v1/users/" + u.ID, token: tokens["admin"]})
				mustStatus(t, r, http.StatusConflict)
			}
		}
	})
}

// TestAuditTrail reads back, through GET /api/v1/audit, the events the issue requires audited.
func TestAuditTrail(t *testing.T) {
	ts := startServer(t)
	admin := ts.userToken("admin", api.RoleAdmin)
	viewer := ts.userToken("viewer", api.RoleViewer)
	ts.do(req{method: "POST", path: "/api/v1/auth/login", body: api.LoginRequest{Username: "admin", Password: "nope-nope"}})
	reg := ts.register("audited")
	ts.do(req{method: "POST", path: "/api/v1/collectors/register", header: map[string]string{"X-Registration-Secret": "wrong"},
		body: api.RegisterRequest{Name: "x", Hostname: "y"}})
	ts.do(req{method: "GET", path: "/api/v1/users", token: viewer})
	mustStatus(t, ts.do(req{method: "PUT", path: "/api/v1/config/" + reg.CollectorID, token: admin,
		body: api.CollectorConfig{IntervalSeconds: 30, QueryTimeoutSeconds: 10}}), http.StatusOK)

	waitFor(t, func() bool { return auditCount(t, ts, "login_failed") == 1 }) // recorded after the answer
	r := ts.do(req{method: "GET", path: "/api/v1/audit?limit=100", token: admin})
	mustStatus(t, r, http.StatusOK)
	var ar api.AuditResponse
	r.decode(t, &ar)
	seen := map[string]api.AuditEntry{}
	for _, e := range ar.Entries {
		seen[e.Action] = e
	}
	for _, action := range []string{"login", "login_failed", "register", "register_failed", "role_denied", "config_changed"} {
		e, ok := seen[action]
		if !ok {
			t.Errorf("no %s entry in %s", action, r.body)
			continue
		}
		if e.IP != "127.0.0.1" {
			t.Errorf("%s: ip %q", action, e.IP)
		}
	}
	if cc := seen["config_changed"]; !strings.Contains(string(cc.Detail), `"interval_seconds":30`) || cc.Actor != "user:admin" {
		t.Errorf("config_changed entry %+v", cc)
	}
	r = ts.do(req{method: "GET", path: "/api/v1/audit?action=login_failed", token: admin})
	r.decode(t, &ar)
	if len(ar.Entries) != 1 || ar.Entries[0].Target != "user:admin" || ar.Entries[0].Success {
		t.Fatalf("filtered: %s", r.body)
	}
}
