package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func writeConfig(t *testing.T, apiURL, extra string) (path, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "collector.token")
	// A closed port: connection refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	doc := fmt.Sprintf(`
[collector]
name = "cli-test"
[api]
url = %q
token_file = %q
timeout = "1s"
[[postgres]]
name = "gone"
dsn = "postgres://pganalytics@%s/postgres?sslmode=disable"
timeout = "1s"
[buffer]
spool_dir = %q
%s`, apiURL, tokenFile, addr, filepath.Join(dir, "spool"), extra)
	path = filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tokenFile
}

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestCommandLine(t *testing.T) {
	var registered api.RegisterRequest
	var secretSeen string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/collectors/register" {
			http.NotFound(w, r)
			return
		}
		secretSeen = r.Header.Get("X-Registration-Secret")
		if secretSeen != "right-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"bad registration secret"}}`)
			return
		}
		json.NewDecoder(r.Body).Decode(&registered)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.RegisterResponse{CollectorID: "c-1", Token: "collector-jwt", Name: registered.Name})
	}))
	defer srv.Close()
	cfgPath, tokenFile := writeConfig(t, srv.URL, "")
	badCfg, _ := writeConfig(t, srv.URL, "[pg_replication]\nenabeld = true\n")

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		stdout   string
		stderr   string
		tokenSet bool
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: "pganalytics "},
		{name: "unknown flag", args: []string{"--nope"}, code: exitcode.Usage, stderr: "unknown flag"},
		{name: "unknown key", args: []string{"--config", badCfg, "--dry-run"}, code: exitcode.Usage, stderr: `collector.toml:15:1: unknown key "pg_replication.enabeld"`},
		{name: "missing config", args: []string{"--config", "/nonexistent.toml"}, code: exitcode.Usage, stderr: "open config"},
		{name: "dry run with an unreachable instance", args: []string{"--config", cfgPath, "--dry-run"}, code: exitcode.Unreachable, stdout: "UNREACHABLE"},
		{name: "run without a token", args: []string{"--config", cfgPath}, code: exitcode.Usage, stderr: "pganalytics register"},
		{name: "register without secret", args: []string{"register", "--config", cfgPath}, code: exitcode.Usage, stderr: "REGISTRATION_SECRET"},
		{name: "register with a wrong secret", args: []string{"register", "--config", cfgPath}, env: map[string]string{"REGISTRATION_SECRET": "wrong"}, code: exitcode.Auth, stderr: "bad registration secret"},
		{name: "register", args: []string{"register", "--config", cfgPath}, env: map[string]string{"REGISTRATION_SECRET": "right-secret"}, code: 0, stdout: "registered collector cli-test (c-1)", tokenSet: true},
		{name: "register twice", args: []string{"register", "--config", cfgPath}, env: map[string]string{"REGISTRATION_SECRET": "right-secret"}, code: exitcode.Usage, stderr: "--force"},
		{name: "secret on the command line is refused", args: []string{"register", "--config", cfgPath, "--secret", "x"}, code: exitcode.Usage, stderr: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, env(tt.env))
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
			if tt.tokenSet {
				b, err := os.ReadFile(tokenFile)
				info, _ := os.Stat(tokenFile)
				if err != nil || strings.TrimSpace(string(b)) != "collector-jwt" || info.Mode().Perm() != 0o600 {
					t.Errorf("token file = %q (%v), mode %v", b, err, info.Mode())
				}
				if registered.Name != "cli-test" || registered.Hostname == "" {
					t.Errorf("registered %+v", registered)
				}
			}
		})
	}
}

// TestBesideRunningCollector: while a collector holds the spool, a second service refuses to start
// (exit 2, naming the holder), --once pushes without the spool and, with the API down or
// answering 503, exits 3 saying its batch was neither delivered nor spooled; the spool is untouched.
func TestBesideRunningCollector(t *testing.T) {
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	pid := strconv.Itoa(os.Getpid())

	tests := []struct {
		name   string
		apiURL string
		args   []string
		code   int
		stdout string
		stderr string
		owner  bool // logs whose spool it is
	}{
		{name: "second service", apiURL: unavailable.URL, code: exitcode.Usage,
			stderr: "is in use by pid " + pid + ": another collector with this spool_dir is running\n"},
		{name: "once, API down", apiURL: closed.URL, args: []string{"--once"}, code: exitcode.Unreachable,
			stderr: "1 batch(es) not delivered and not spooled: api unreachable", owner: true},
		{name: "once, API answering 503", apiURL: unavailable.URL, args: []string{"--once"}, code: exitcode.Unreachable,
			stderr: "1 batch(es) not delivered and not spooled: api: 503", owner: true},
		{name: "dry run", apiURL: unavailable.URL, args: []string{"--dry-run"}, code: exitcode.Unreachable, stdout: "nothing was pushed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgPath, tokenFile := writeConfig(t, tt.apiURL, "")
			if err := os.WriteFile(tokenFile, []byte("collector-jwt\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			spool := filepath.Join(filepath.Dir(cfgPath), "spool")
			held, err := buffer.Open(buffer.Options{Dir: spool})
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			// Bounded: without the lock a second service would run until cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, append([]string{"--config", cfgPath}, tt.args...), &stdout, &stderr, env(nil))
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, want %d with stdout %q and stderr %q\nstdout: %s\nstderr: %s",
					code, tt.code, tt.stdout, tt.stderr, stdout.String(), stderr.String())
			}
			if owner := `level=INFO msg="the spool belongs to a running collector: this one-off cycle is pushed directly and not spooled" collector=cli-test spool=` + spool + " pid=" + pid; tt.owner && !strings.Contains(stderr.String(), owner) {
				t.Errorf("stderr lacks %q:\n%s", owner, stderr.String())
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 2 { // .lock and rejected/
				t.Errorf("the held spool changed: %v", entries)
			}
		})
	}
}
