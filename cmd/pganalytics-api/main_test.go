package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/store"
)

const secret = "0123456789abcdef0123456789abcdef"

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, ctx context.Context, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return vars[k] },
	})
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionAndUsage(t *testing.T) {
	r := runCmd(t, t.Context(), nil, "", "version")
	if r.code != exitcode.OK || !strings.HasPrefix(r.stdout, "pganalytics-api ") {
		t.Fatalf("version: %+v", r)
	}
	for _, args := range [][]string{{"--bogus"}, {"frobnicate"}, {"migrate", "sideways"}, {"user", "add"}, {"user", "add", "bob"}} {
		r := runCmd(t, t.Context(), nil, "", args...)
		if r.code != exitcode.Usage || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: code %d stderr %q", args, r.code, r.stderr)
		}
	}
}

// TestServeRefusesToStart checks each refusal is one clear line and the right exit code, before
// anything listens.
func TestServeRefusesToStart(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":   "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
		"JWT_SECRET_KEY": secret, "REGISTRATION_SECRET": secret, "TRUSTED_PROXIES": "10.0.0.1",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	fast := writeConfig(t, "[database]\nconnect_timeout = \"1s\"\n")
	cases := []struct {
		name   string
		vars   map[string]string
		config string
		code   int
		want   string
	}{
		{"short secret", with("JWT_SECRET_KEY", "short"), "", exitcode.Usage, "JWT_SECRET_KEY is 5 bytes; production requires at least 32"},
		{"missing registration secret", with("REGISTRATION_SECRET", ""), "", exitcode.Usage, "REGISTRATION_SECRET is not set"},
		{"plain HTTP in production", with("TRUSTED_PROXIES", ""), "", exitcode.Usage, "production refuses plain HTTP"},
		{"unknown config key", with(), writeConfig(t, "listen = \":1\"\n"), exitcode.Usage, `:1:1: unknown key "listen"`},
		{"unreadable TLS key", with("TLS_ENABLED", "true", "TLS_CERT_FILE", "/nonexistent/cert.pem", "TLS_KEY_FILE", "/nonexistent/key.pem"), "", exitcode.Usage, "load TLS certificate /nonexistent/cert.pem and key /nonexistent/key.pem"},
		{"unreachable database", with(), fast, exitcode.Failure, "database unreachable"},
		{"malformed DATABASE_URL", with("DATABASE_URL", "postgres://u:hunter2@db:notaport/x"), "", exitcode.Usage, "DATABASE_URL is not a valid PostgreSQL connection string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve"}
			if tc.config != "" {
				args = append(args, "--config", tc.config)
			}
			r := runCmd(t, t.Context(), tc.vars, "", args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if r.code != tc.code || !strings.Contains(last, tc.want) || !strings.HasPrefix(last, "pganalytics-api: ") {
				t.Fatalf("code %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
			if strings.Contains(r.stderr, secret) {
				t.Fatal("a secret leaked")
			}
		})
	}
}

func TestMigrateAndUserAdd(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "cli_migrate")
	vars := map[string]string{"DATABASE_URL": dsn}
	ctx := t.Context()

	r := runCmd(t, ctx, vars, "", "migrate", "status")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "pending") {
		t.Fatalf("status before: %+v", r)
	}
	r = runCmd(t, ctx, vars, "", "migrate")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "applied 00001_") {
		t.Fatalf("migrate: %+v", r)
	}
	r = runCmd(t, ctx, vars, "", "migrate", "up")
	if r.code != exitcode.OK || r.stdout != "schema is up to date\n" {
		t.Fatalf("migrate again: %+v", r)
	}
	r = runCmd(t, ctx, vars, "", "migrate", "status")
	if r.code != exitcode.OK || strings.Contains(r.stdout, "pending") || !strings.HasPrefix(r.stdout, "VERSION") {
		t.Fatalf("status after: %+v", r)
	}

	r = runCmd(t, ctx, vars, "s3cret-passw0rd\n", "user", "add", "alice", "--role", "admin", "--team-roles", "deployment-lead,database-lead")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "created user alice (admin)") {
		t.Fatalf("user add: %+v", r)
	}
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if roles, err := st.TeamRolesOf(ctx, "alice"); err != nil || strings.Join(roles, ",") != "database-lead,deployment-lead" {
		t.Errorf("alice's team roles: %v, %v", roles, err)
	}
	h, err := auth.NewHasher(auth.DefaultArgon2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(ctx, u.PasswordHash, "s3cret-passw0rd"); !ok || err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("stored hash %q does not verify: %v", u.PasswordHash, err)
	}

	t.Run("unlock", func(t *testing.T) {
		p := store.ThrottlePolicy{PerAccountAddress: 1, PerAddress: 10, PerAccount: 10, Window: time.Hour}
		if _, err := st.RecordLoginFailure(ctx, "alice", "203.0.113.9", p, time.Now()); err != nil {
			t.Fatal(err)
		}
		r := runCmd(t, ctx, vars, "", "user", "unlock", "alice")
		if r.code != exitcode.OK || r.stdout != "unlocked user alice (1 locks lifted)\n" {
			t.Fatalf("unlock: %+v", r)
		}
		if l, err := st.LoginLocks(ctx, "alice", "203.0.113.9", time.Now()); err != nil || !l.AccountAddress.IsZero() {
			t.Fatalf("still locked: %+v %v", l, err)
		}
		entries, err := st.ListAudit(ctx, store.AuditQuery{Action: "user_unlocked"})
		if err != nil || len(entries) != 1 || entries[0].Target != "user:alice" || entries[0].Actor != "cli" {
			t.Fatalf("audit %+v %v", entries, err)
		}
		if r := runCmd(t, ctx, vars, "", "user", "unlock", "nobody"); r.code != exitcode.Usage || !strings.Contains(r.stderr, `no user "nobody"`) {
			t.Fatalf("unknown user: %+v", r)
		}
	})

	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"duplicate", "another-password\n", []string{"user", "add", "alice", "--role", "viewer"}, `user "alice" already exists`},
		{"bad role", "another-password\n", []string{"user", "add", "bob", "--role", "root"}, "role must be admin, operator or viewer"},
		{"short password", "short\n", []string{"user", "add", "bob", "--role", "viewer"}, "at least 8 bytes"},
		{"no password", "", []string{"user", "add", "bob", "--role", "viewer"}, "no password on stdin"},
		{"bad team role", "another-password\n", []string{"user", "add", "bob", "--role", "viewer", "--team-roles", "cfo"}, `unknown team role "cfo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, ctx, vars, tc.stdin, tc.args...)
			if r.code != exitcode.Usage || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("%+v", r)
			}
		})
	}
}

// TestServeRunsAndStops starts the real command, waits for health, then cancels (as SIGTERM does).
func TestServeRunsAndStops(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "cli_serve")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	vars := map[string]string{
		"DATABASE_URL": dsn, "JWT_SECRET_KEY": secret, "REGISTRATION_SECRET": secret,
		"ENVIRONMENT": "staging", "LISTEN_ADDR": addr,
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() { done <- runCmd(t, ctx, vars, "") }()

	deadline := time.Now().Add(30 * time.Second)
	var h api.Health
	for {
		res, err := http.Get("http://" + addr + "/api/v1/health")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&h)
			res.Body.Close()
			if err == nil && h.Status == "healthy" {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server never healthy: %v %+v", err, <-done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	r := <-done
	if r.code != exitcode.OK || !strings.Contains(r.stderr, `"msg":"stopped"`) || !strings.Contains(r.stderr, `"msg":"applied migrations"`) {
		t.Fatalf("serve: %+v", r)
	}
}

func TestAlertsCheck(t *testing.T) {
	r := runCmd(t, t.Context(), nil, "", "alerts", "check")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "rules OK") {
		t.Fatalf("shipped rules: %+v", r)
	}
	bad := writeConfig(t, "[[rule]]\nname = \"Lag\"\nquantity = \"replay_lag_seconds\"\nwarning = 1\nsummary = \"s\"\nfor = 10\n")
	r = runCmd(t, t.Context(), nil, "", "alerts", "check", bad)
	if r.code != exitcode.Usage || !strings.Contains(r.stderr, ":6: ") || !strings.Contains(r.stderr, `invalid duration "10"`) {
		t.Fatalf("bad rules: %+v", r)
	}
	r = runCmd(t, t.Context(), nil, "", "alerts", "quantities")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "replay_lag_seconds") || !strings.Contains(r.stdout, "standby") {
		t.Fatalf("quantities: %+v", r)
	}
}
