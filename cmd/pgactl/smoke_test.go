package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// isolateEnv clears every variable pgactl reads, so a developer's own contexts file or environment
// cannot leak into a test.
func isolateEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	for _, k := range []string{
		client.EnvConfig, client.EnvContext, client.EnvAPIURL, client.EnvCAFile, client.EnvUsername, client.EnvPassword,
		client.EnvPasswordFile, client.EnvViewerUsername, client.EnvViewerPassword, client.EnvViewerPasswordFile,
		client.EnvDatabaseURL, client.EnvToken, "PGACTL_CORS_ORIGIN",
	} {
		t.Setenv(k, "")
	}
}

func exitCode(err error) int { return exitcode.Of(err, exitcode.Usage) }

func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// tinyAPI answers health (healthyBody) and refuses every login.
func tinyAPI(t *testing.T, healthBody string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/health":
			io.WriteString(w, healthBody)
		case "/api/v1/auth/login":
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"invalid_credentials","message":"invalid username or password"}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"not_found","message":"no such route"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const healthyBody = `{"status":"healthy","uptime":5,"version":"3.2.0","checks":{"database":"healthy"}}`

func wrongPasswordFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.pass")
	if err := os.WriteFile(path, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runSmokeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newSmokeCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.With(exitcode.Usage, err) })
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestSmokeCommandExitCodes(t *testing.T) {
	isolateEnv(t)
	healthy := tinyAPI(t, healthyBody)
	degraded := tinyAPI(t, `{"status":"degraded","uptime":5,"version":"3.2.0","checks":{"database":"degraded"}}`)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
		out  string
	}{
		{"list", nil, []string{"--list"}, exitcode.OK, "rate-limit"},
		{"passing check", nil, []string{"--api-url", healthy, "--only", "health"}, exitcode.OK, "PASS  health"},
		{"a skip passes", nil, []string{"--api-url", healthy, "--only", "health,cors"}, exitcode.OK, "SKIP  cors"},
		{"a skip fails with --strict", nil, []string{"--api-url", healthy, "--only", "health,cors", "--strict", "-o", "json"}, exitcode.CheckFailed, `"status": "skip"`},
		{"failing check", nil, []string{"--api-url", degraded, "--only", "health", "-o", "json"}, exitcode.CheckFailed, `"status": "fail"`},
		{"unreachable", nil, []string{"--api-url", closedPortURL(t)}, exitcode.Unreachable, ""},
		{"admin login refused", map[string]string{client.EnvPassword: "wrong"}, []string{"--api-url", healthy, "--username", "admin"}, exitcode.Auth, ""},
		{"admin login refused, password from a file", nil, []string{"--api-url", healthy, "--username", "admin", "--password-file", wrongPasswordFile(t)}, exitcode.Auth, ""},
		{"missing password file", nil, []string{"--api-url", healthy, "--username", "admin", "--password-file", "/nonexistent/pw"}, exitcode.Usage, ""},
		{"no API URL", nil, nil, exitcode.Usage, ""},
		{"unknown check", nil, []string{"--api-url", healthy, "--skip", "nope"}, exitcode.Usage, ""},
		{"unknown format", nil, []string{"--api-url", healthy, "-o", "xml"}, exitcode.Usage, ""},
		{"password without terminal", nil, []string{"--api-url", healthy, "--username", "admin"}, exitcode.Usage, ""},
		{"password in --database-url", nil, []string{"--api-url", healthy, "--database-url", "postgres://u:pw@h/db"}, exitcode.Usage, ""},
		{"bad flag", nil, []string{"--no-such-flag"}, exitcode.Usage, ""},
		{"zero cert days", nil, []string{"--api-url", healthy, "--cert-min-days", "0"}, exitcode.Usage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, err := runSmokeCmd(t, tt.args...)
			if got := exitCode(err); got != tt.want {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", got, err, tt.want, out)
			}
			if !strings.Contains(out, tt.out) {
				t.Errorf("output lacks %q:\n%s", tt.out, out)
			}
			if tt.want == exitcode.CheckFailed {
				var report map[string]any
				if err := json.Unmarshal([]byte(out), &report); err != nil {
					t.Errorf("-o json output is not JSON: %v", err)
				}
			}
		})
	}
}
