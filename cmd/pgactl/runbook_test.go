package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// pgactlRun runs the root command with stdin and returns stdout+stderr and the exit code.
func pgactlRun(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		out.WriteString("pgactl: " + err.Error() + "\n")
	}
	return out.String(), exitCode(err)
}

const cliRunbook = `
title = "cli"
[[phase]]
id = "deploy"
title = "Deploy"
[[phase.step]]
id = "approve"
title = "Approve the change"
kind = "manual"
checklist = ["change reviewed"]
[[phase.step]]
id = "build"
title = "Build"
kind = "command"
run = 'echo built >> "$WORK/log"; greet'
[[phase.step]]
id = "wipe"
title = "Wipe the scratch area"
kind = "command"
destructive = true
run = 'echo wiped >> "$WORK/log"'
[[phase.step]]
id = "verify"
title = "Verify"
kind = "command"
run = 'test -e "$WORK/ok" || { echo "not ok yet" >&2; exit 1; }'

[[phase]]
id = "probe"
title = "Probe"
[[phase.step]]
id = "health"
title = "Health"
kind = "check"
check = "http-health"
url = "${API_URL}"
`

// cliFixture writes a runbook and an environment file; it returns the common flags.
func cliFixture(t *testing.T, apiURL string) (work string, flags []string) {
	t.Helper()
	isolateEnv(t)
	t.Setenv("PGACTL_ENV", "")
	t.Setenv("PGACTL_STATE_DIR", "")
	dir := t.TempDir()
	work = filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	rb := filepath.Join(dir, "runbook.toml")
	env := filepath.Join(dir, "env.toml")
	if err := os.WriteFile(rb, []byte(cliRunbook), 0o600); err != nil {
		t.Fatal(err)
	}
	envText := "loopback_only = true\n[vars]\nWORK = \"" + work + "\"\nAPI_URL = \"" + apiURL + "\"\n[commands]\ngreet = \"echo hello from the environment\"\n"
	if err := os.WriteFile(env, []byte(envText), 0o600); err != nil {
		t.Fatal(err)
	}
	return work, []string{"--file", rb, "--env", env, "--state-dir", filepath.Join(dir, "state"), "--local"}
}

func TestRunbookCommandRunAndResume(t *testing.T) {
	work, flags := cliFixture(t, closedPortURL(t))
	// A local run has nobody to approve the destructive step: the test breaks the glass.
	run := func(stdin string, args ...string) (string, int) {
		return pgactlRun(t, stdin, append(append(args, flags...), "--break-glass", "testing the CLI alone")...)
	}

	// Non-interactive: the destructive step needs --confirm-destructive.
	out, code := run("", "runbook", "run", "deploy", "--yes")
	if code != exitcode.Usage || !strings.Contains(out, "--confirm-destructive") {
		t.Fatalf("--yes without --confirm-destructive: exit %d\n%s", code, out)
	}
	if _, code := run("", "runbook", "run", "deploy", "--confirm-destructive"); code != exitcode.Usage {
		t.Errorf("--confirm-destructive without --yes: exit %d, want 2", code)
	}

	// Interactive: confirm the manual step, mistype then type the destructive step's id; verify fails.
	out, code = run("y\nwipe-it\nwipe\na\n", "runbook", "run", "deploy")
	if code != exitcode.CheckFailed {
		t.Fatalf("interactive run: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"[ ] change reviewed", "hello from the environment", "is DESTRUCTIVE", `"wipe-it" is not the step id`,
		"not ok yet", "FAILED", "continue with: pgactl runbook run --resume"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Fix what failed, then resume: only the failed step runs again.
	if err := os.WriteFile(filepath.Join(work, "ok"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = pgactlRun(t, "", "runbook", "run", "--resume", "--state-dir", flags[5], "--local", "--break-glass", "testing the CLI alone")
	if code != exitcode.OK || !strings.Contains(out, "resuming run") {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	log, _ := os.ReadFile(filepath.Join(work, "log"))
	if string(log) != "built\nwiped\n" {
		t.Errorf("steps ran %q, want each once", log)
	}

	state := flags[4:7]
	out, code = pgactlRun(t, "", append([]string{"runbook", "status"}, state...)...)
	if code != exitcode.OK || !strings.Contains(out, "succeeded") || !strings.Contains(out, "deploy/verify") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	out, code = pgactlRun(t, "", append([]string{"runbook", "log"}, state...)...)
	if code != exitcode.OK || !strings.Contains(out, "deploy/wipe: destructive prompt: proceed") || !strings.Contains(out, "$ echo built") {
		t.Errorf("log: exit %d\n%s", code, out)
	}
	out, _ = pgactlRun(t, "", append([]string{"runbook", "log", "-o", "json"}, state...)...)
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log -o json line %d: %v: %s", n+1, err, sc.Text())
		}
		n++
	}
	if n < 6 {
		t.Errorf("log -o json: %d records", n)
	}
}

func TestRunbookCommandExitCodes(t *testing.T) {
	_, flags := cliFixture(t, closedPortURL(t))
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("title = \"x\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\ntimeout = \"soon\"\nrun = \"true\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := flags[:2]
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"list", append([]string{"runbook", "list"}, file...), exitcode.OK, "deploy/wipe"},
		{"show a step", append([]string{"runbook", "show", "deploy/wipe"}, file...), exitcode.OK, "DESTRUCTIVE"},
		{"unknown phase", []string{"runbook", "run", "nope", "--yes"}, exitcode.Usage, `no phase "nope"`},
		{"no target", []string{"runbook", "run"}, exitcode.Usage, "name a phase"},
		{"unreachable API", []string{"runbook", "run", "probe", "--yes"}, exitcode.Unreachable, "unreachable"},
		{"dry run", []string{"runbook", "run", "deploy", "--dry-run"}, exitcode.OK, "cannot simulate 1 steps"},
		{"malformed runbook", []string{"runbook", "list", "--file", bad}, exitcode.Usage, "bad.toml:9:"},
		{"bad output", append([]string{"runbook", "list", "-o", "yaml"}, file...), exitcode.Usage, "unknown output format"},
		{"env shows variables", []string{"runbook", "env", flags[3]}, exitcode.OK, "loopback only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[1] == "run" {
				args = append(append([]string{}, args...), flags...)
			}
			out, code := pgactlRun(t, "", args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q?\n%s", code, tt.code, tt.want, out)
			}
		})
	}
}

func TestRunbookShippedDefaults(t *testing.T) {
	isolateEnv(t)
	state := t.TempDir()
	t.Setenv("PGACTL_STATE_DIR", state)
	t.Setenv("PGACTL_ENV", "")

	out, code := pgactlRun(t, "", "runbook", "list")
	if code != exitcode.OK {
		t.Fatalf("list: %d\n%s", code, out)
	}
	for _, phase := range []string{"pre-deployment", "staging", "production", "monitoring", "rollback"} {
		if !strings.Contains(out, "\n"+phase+" — ") {
			t.Errorf("list lacks phase %s", phase)
		}
	}
	// The default environment is the demo: without a running demo it says how to start one.
	out, code = pgactlRun(t, "", "runbook", "run", "staging", "--dry-run")
	if code != exitcode.Usage || !strings.Contains(out, "make demo") {
		t.Errorf("dry run without a demo: exit %d\n%s", code, out)
	}
	demoDir := filepath.Join(state, "demo")
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	demoEnv := "PGACTL_API_URL=http://127.0.0.1:8080\nPGACTL_USERNAME=admin\nPGACTL_PASSWORD=pw-123456789\nPGACTL_VIEWER_USERNAME=viewer\n" +
		"PGACTL_VIEWER_PASSWORD=pw-987654321\nPGACTL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/pganalytics\nPGACTL_CORS_ORIGIN=http://localhost:3000\nPGACTL_CA_FILE=\nPGACTL_API_SERVERS=\nALERTMANAGER_URL=\n" +
		"REGISTRATION_SECRET=0123456789abcdef0123456789abcdef\nCOLLECTOR_CONFIG=" + demoDir + "/collector.toml\nBIN_DIR=/nonexistent/bin\n" +
		"DEMO_DIR=" + demoDir + "\nPRIMARY_URL=postgres://postgres@127.0.0.1:5433/postgres\nSTANDBY_URL=postgres://postgres@127.0.0.1:5434/postgres\nBACKUP_DIR=" + demoDir + "/backups\n"
	if err := os.WriteFile(filepath.Join(demoDir, "demo.env"), []byte(demoEnv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = pgactlRun(t, "", "rollback", "--dry-run")
	if code != exitcode.OK {
		t.Fatalf("rollback --dry-run: exit %d\n%s", code, out)
	}
	for _, want := range []string{"rollback/stop", "rollback/restore", `asks the operator to type "restore"`, "pg_restore", "10 steps ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollback dry run lacks %q", want)
		}
	}
	if strings.Contains(out, "0123456789abcdef0123456789abcdef") || strings.Contains(out, "pw-123456789") {
		t.Error("dry run shows a secret")
	}
	// A demo env pointing off the machine is refused before anything runs.
	remote := strings.Replace(demoEnv, "http://127.0.0.1:8080", "http://198.51.100.4:8080", 1)
	if err := os.WriteFile(filepath.Join(demoDir, "demo.env"), []byte(remote), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = pgactlRun(t, "", "runbook", "run", "staging/health", "--yes", "--local")
	if code != exitcode.Usage || !strings.Contains(out, "loopback") {
		t.Errorf("remote demo env: exit %d\n%s", code, out)
	}
}
