package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/amtest"
	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// A phase with every kind of step, against a real PostgreSQL and an HTTP peer imitating the API.
func TestRunPhaseEndToEnd(t *testing.T) {
	pg := pgtest.Shared(t)
	dsn := pg.CreateDB(t, "rb_e2e")
	pg.Exec(t, "DROP ROLE IF EXISTS rb_e2e_monitor")
	pg.Exec(t, "CREATE ROLE rb_e2e_monitor LOGIN NOINHERIT") // the seed's role
	pg.Exec(t, "GRANT pg_monitor TO rb_e2e_monitor")
	t.Cleanup(func() { pg.Exec(t, "DROP ROLE IF EXISTS rb_e2e_monitor") })
	fake := &fakeAPI{status: "healthy", secret: "registration-secret-0123456789abcdef", user: "admin", pass: "admin-password-42", samples: 3}
	srv := fake.server(t)
	work := t.TempDir()

	rb := mustParse(t, `
title = "e2e"
[[phase]]
id = "deploy"
title = "Deploy"
[[phase.step]]
id = "approve"
title = "Approve"
kind = "manual"
checklist = ["reviewed"]
[[phase.step]]
id = "install"
title = "Install"
kind = "command"
timeout = "30s"
run = """
echo "installing to $WORK_DIR with token $API_TOKEN"
say_hello world
touch "$WORK_DIR/installed"
"""
[[phase.step]]
id = "schema"
title = "Schema"
kind = "sql"
sql = "CREATE TABLE metrics (timestamp timestamptz, collector_id text); INSERT INTO metrics VALUES (now(), 'c-1'), (now(), 'c-2');"
[[phase.step]]
id = "count"
title = "Count"
kind = "sql"
sql = "SELECT collector_id, COUNT(*) FROM metrics WHERE collector_id = $1 GROUP BY 1"
params = ["${COLLECTOR_ID}"]
expect = { rows = "== 1", equals = [["c-1", "1"]] }
[[phase.step]]
id = "reachable"
title = "Reachable"
kind = "check"
check = "postgres"
[[phase.step]]
id = "monitor-role"
title = "Monitor role"
kind = "check"
check = "pg-monitor"
role = "rb_e2e_monitor"
[[phase.step]]
id = "health"
title = "Health"
kind = "check"
check = "http-health"
url = "${API_URL}"
[[phase.step]]
id = "headers"
title = "Headers"
kind = "check"
check = "security-headers"
url = "${API_URL}"
[[phase.step]]
id = "register"
title = "Register"
kind = "check"
check = "registration"
url = "${API_URL}"
secret = "${REGISTRATION_SECRET}"
name = "test-collector"
hostname = "localhost"
[[phase.step]]
id = "register-and-clean-up"
title = "Register, then deregister"
kind = "check"
check = "registration"
url = "${API_URL}"
secret = "${REGISTRATION_SECRET}"
name = "test-collector-2"
hostname = "localhost"
username = "${API_USERNAME}"
password = "${API_PASSWORD}"
[[phase.step]]
id = "metrics"
title = "Metrics"
kind = "check"
check = "api-metrics"
url = "${API_URL}"
username = "${API_USERNAME}"
password = "${API_PASSWORD}"
`)
	env := mustEnv(t, true, map[string]string{
		"API_URL": srv.URL, "DATABASE_URL": dsn, "WORK_DIR": work, "COLLECTOR_ID": "c-1",
		"API_TOKEN": "tok-very-secret-123", "REGISTRATION_SECRET": fake.secret,
		"API_USERNAME": fake.user, "API_PASSWORD": fake.pass,
	}, map[string]string{"say_hello": `echo "hello $1"`})
	rec := &recorder{}
	conf := &answers{replies: map[PromptKind][]Reply{PromptManual: {{Decision: Proceed}}}}
	e := newTestEngine(t, rb, env, Options{Confirmer: conf, OnEvent: rec.on})

	st, err := e.Run(context.Background(), Target{Phase: "deploy"})
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, strings.Join(rec.lines(), "\n"))
	}
	if st.Status != StatusSucceeded {
		t.Fatalf("status %s", st.Status)
	}
	for step, status := range stepStatuses(st) {
		if status != StatusSucceeded {
			t.Errorf("step %s: %s", step, status)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "installed")); err != nil {
		t.Errorf("command step did not run: %v", err)
	}
	if fake.registrations != 2 || fake.deletions != 1 {
		t.Errorf("registrations = %d, deletions = %d, want 2 and 1 (the step with credentials cleans up)",
			fake.registrations, fake.deletions)
	}
	out := strings.Join(rec.lines(), "\n")
	for _, want := range []string{"hello world", "installing to " + work + " with token " + Redacted, "status healthy",
		"ok       X-Frame-Options: DENY", "token received", "deregistered again", "3 samples", "NOINHERIT member of pg_monitor", "(1 row)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The persisted state and the audit log: complete, and free of secrets.
	loaded, err := e.Store().Load(context.Background(), st.ID)
	if err != nil || loaded.Status != StatusSucceeded || len(loaded.Steps) != 11 {
		t.Fatalf("persisted state %+v, %v", loaded, err)
	}
	recs := readAuditFile(t, e, st.ID)
	if recs[0].Event != AuditRunStarted || recs[len(recs)-1].Event != AuditRunFinished || recs[len(recs)-1].Status != StatusSucceeded {
		t.Errorf("audit log does not start and end the run: first %+v last %+v", recs[0], recs[len(recs)-1])
	}
	install := stepRecords(recs, "install")
	if len(install) != 1 || install[0].ExitCode == nil || *install[0].ExitCode != 0 || install[0].Who != "tester" ||
		!strings.Contains(install[0].Command, `touch "$WORK_DIR/installed"`) || !strings.Contains(install[0].Output, "hello world") ||
		install[0].Start.IsZero() || install[0].End.Before(install[0].Start) {
		t.Errorf("install audit record incomplete: %+v", install)
	}
	for _, f := range []string{e.Store().AuditPath(st.ID), filepath.Join(e.Store().RunDir(st.ID), "state.json")} {
		data, _ := os.ReadFile(f)
		for _, secret := range []string{"tok-very-secret-123", fake.pass, fake.secret, "collector-token-value"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s holds secret %q", filepath.Base(f), secret)
			}
		}
	}
}

// blockingRunbook's step "wait" blocks until the file $GATE exists; "first" counts its runs.
const blockingRunbook = `
title = "blocking"
[[phase]]
id = "p"
title = "P"
[[phase.step]]
id = "first"
title = "First"
kind = "command"
run = 'echo run >> "$WORK/first.count"'
[[phase.step]]
id = "wait"
title = "Wait for the gate"
kind = "command"
timeout = "1m"
run = """
sleep 600 &
echo $! > "$WORK/child.pid"
echo "waiting for the gate"
until [ -e "$GATE" ]; do sleep 0.05; done
kill %1
"""
[[phase.step]]
id = "last"
title = "Last"
kind = "command"
run = 'touch "$WORK/last.done"'
`

func TestResumeAfterInterrupt(t *testing.T) {
	work := t.TempDir()
	gate := filepath.Join(work, "gate")
	rb := mustParse(t, blockingRunbook)
	env := mustEnv(t, false, map[string]string{"WORK": work, "GATE": gate}, nil)
	stateDir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{hook: func(ev Event) {
		// Quit mid-step, once "wait" has started its background child.
		if ev.Kind == EventOutput && ev.Step.ID == "wait" && ev.Line == "waiting for the gate" {
			cancel()
		}
	}}
	e := newTestEngine(t, rb, env, Options{StateDir: stateDir, OnEvent: rec.on})
	st, err := e.Run(ctx, Target{Phase: "p"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run error = %v, want context.Canceled", err)
	}
	if st.Status != StatusInterrupted {
		t.Fatalf("status %s, want interrupted", st.Status)
	}
	got := stepStatuses(st)
	if got["first"] != StatusSucceeded || got["wait"] != StatusInterrupted || got["last"] != StatusPending {
		t.Fatalf("steps after interrupt: %v", got)
	}
	// The whole process group went, including the background child.
	if pid := readPID(t, filepath.Join(work, "child.pid")); !exited(pid) {
		t.Errorf("background child %d still alive after cancel", pid)
	}

	// Resume in a new engine, as a new process would.
	writeFile(t, work, "gate", "")
	e2 := newTestEngine(t, rb, env, Options{StateDir: stateDir})
	st2, err := e2.Resume(context.Background(), st.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	got = stepStatuses(st2)
	if st2.Status != StatusSucceeded || got["wait"] != StatusSucceeded || got["last"] != StatusSucceeded {
		t.Fatalf("after resume: %s %v", st2.Status, got)
	}
	if n := countLines(t, filepath.Join(work, "first.count")); n != 1 {
		t.Errorf("step first ran %d times, want 1 (resume re-ran a finished step)", n)
	}
	if st2.Steps[1].Attempts != 2 {
		t.Errorf("wait attempts = %d, want 2", st2.Steps[1].Attempts)
	}
	if _, err := e2.Resume(context.Background(), st.ID); err == nil {
		t.Error("resuming a succeeded run was accepted")
	}
}

// A crash leaves the state saying "running" for the step in flight; resume runs it again.
func TestResumeAfterCrash(t *testing.T) {
	work := t.TempDir()
	rb := mustParse(t, blockingRunbook)
	env := mustEnv(t, false, map[string]string{"WORK": work, "GATE": filepath.Join(work, "gate")}, nil)
	writeFile(t, work, "gate", "")
	e := newTestEngine(t, rb, env, Options{})
	st, err := e.Run(context.Background(), Target{Phase: "p", Step: "first"})
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the state as a process killed during the step would have left it.
	st.Status, st.Steps[0].Status = StatusRunning, StatusRunning
	if err := e.Store().save(st); err != nil {
		t.Fatal(err)
	}
	t.Run("locked while another process runs it", func(t *testing.T) {
		unlock, err := e.Store().lock(st.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if !e.Store().inProgress(st.ID) {
			t.Error("InProgress = false while locked")
		}
		if _, err := e.Resume(context.Background(), st.ID); err == nil || !strings.Contains(err.Error(), "in progress") {
			t.Errorf("resume of a locked run: %v", err)
		}
	})
	st2, err := e.Resume(context.Background(), st.ID)
	if err != nil || st2.Status != StatusSucceeded || st2.Steps[0].Attempts != 2 {
		t.Fatalf("resume after crash: %+v, %v", st2, err)
	}
	if n := countLines(t, filepath.Join(work, "first.count")); n != 2 {
		t.Errorf("step ran %d times, want 2", n)
	}
}

func TestFailingStepAndRetry(t *testing.T) {
	// The command fails until it has been attempted FAILS+1 times.
	const src = `
title = "retry"
[[phase]]
id = "p"
title = "P"
[[phase.step]]
id = "flaky"
title = "Flaky"
kind = "command"
%s
run = """
n=$(( $(cat "$WORK/n" 2>/dev/null || echo 0) + 1 ))
echo $n > "$WORK/n"
echo "attempt $n"
if (( n <= FAILS )); then echo "not yet" >&2; exit 3; fi
"""
`
	tests := []struct {
		name       string
		fails      int
		extra      string
		conf       Confirmer
		wantStatus Status
		wantRuns   int
	}{
		{"operator retries", 1, "", &answers{replies: map[PromptKind][]Reply{PromptFailed: {{Decision: Proceed}}}}, StatusSucceeded, 2},
		{"automatic retries", 2, "retries = 2\nretry_delay = \"1ms\"", nil, StatusSucceeded, 3},
		{"operator skips", 1, "", &answers{replies: map[PromptKind][]Reply{PromptFailed: {{Decision: Skip}}}}, StatusSucceeded, 1},
		{"operator aborts", 1, "", &answers{replies: map[PromptKind][]Reply{PromptFailed: {{Decision: Abort}}}}, StatusFailed, 1},
		{"nobody to ask", 1, "", nil, StatusFailed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			rb := mustParse(t, fmt.Sprintf(src, tt.extra))
			rb.Phases[0].Steps[0].Run = strings.ReplaceAll(rb.Phases[0].Steps[0].Run, "FAILS", strconv.Itoa(tt.fails))
			env := mustEnv(t, false, map[string]string{"WORK": work}, nil)
			e := newTestEngine(t, rb, env, Options{Confirmer: tt.conf})
			st, err := e.Run(context.Background(), Target{Phase: "p"})
			if st.Status != tt.wantStatus {
				t.Fatalf("status %s (err %v), want %s", st.Status, err, tt.wantStatus)
			}
			if (err == nil) != (tt.wantStatus == StatusSucceeded) {
				t.Fatalf("err = %v with status %s", err, st.Status)
			}
			if err != nil && (!errors.Is(err, ErrStepFailed) || !strings.Contains(err.Error(), "exited with status 3")) {
				t.Errorf("error %v: want ErrStepFailed with the exit status", err)
			}
			recs := stepRecords(readAuditFile(t, e, st.ID), "flaky")
			runs := 0
			for _, r := range recs {
				if r.ExitCode != nil {
					runs++
				}
			}
			if runs != tt.wantRuns {
				t.Fatalf("%d attempts audited, want %d", runs, tt.wantRuns)
			}
			if *recs[0].ExitCode != 3 || !strings.Contains(recs[0].Output, "not yet") {
				t.Errorf("first attempt audit: exit %d output %q", *recs[0].ExitCode, recs[0].Output)
			}
			if tt.wantStatus == StatusFailed {
				// Retry by resuming: the failed step runs again and now passes.
				st2, err := newTestEngine(t, rb, env, Options{StateDir: e.Store().Dir}).Resume(context.Background(), st.ID)
				if err != nil || st2.Status != StatusSucceeded {
					t.Fatalf("resume: %v %v", st2.Status, err)
				}
			}
		})
	}
}

func TestDestructiveStepNeedsTypedConfirmation(t *testing.T) {
	const src = `
title = "d"
[[phase]]
id = "p"
title = "P"
[[phase.step]]
id = "drop-everything"
title = "Drop everything"
kind = "command"
destructive = true
run = 'touch "$WORK/ran"'
`
	tests := []struct {
		name       string
		conf       Confirmer
		wantErr    error
		wantStatus Status
		wantRan    bool
	}{
		{"local run without break glass", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Proceed, Typed: "<id>"}}}}, ErrApprovalNeedsShared, StatusAborted, false},
		{"no confirmer", nil, ErrNoConfirmer, StatusAborted, false},
		{"proceed without typing", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Proceed}}}}, ErrNotConfirmed, StatusAborted, false},
		{"typed the wrong id", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Proceed, Typed: "drop"}}}}, ErrNotConfirmed, StatusAborted, false},
		{"aborted", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Abort}}}}, ErrAborted, StatusAborted, false},
		{"skipped", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Skip}}}}, nil, StatusSucceeded, false},
		{"typed the id", &answers{replies: map[PromptKind][]Reply{PromptDestructive: {{Decision: Proceed, Typed: "<id>"}}}}, nil, StatusSucceeded, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			// A local run has no second person: only a break-glass reason lets it run the step.
			breakGlass := "API down, two of us at the desk"
			if tt.wantErr == ErrApprovalNeedsShared {
				breakGlass = ""
			}
			e := newTestEngine(t, mustParse(t, src), mustEnv(t, false, map[string]string{"WORK": work}, nil), Options{Confirmer: tt.conf, BreakGlass: breakGlass})
			st, err := e.Run(context.Background(), Target{Phase: "p"})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if st.Status != tt.wantStatus {
				t.Errorf("status %s, want %s", st.Status, tt.wantStatus)
			}
			_, statErr := os.Stat(filepath.Join(work, "ran"))
			if ran := statErr == nil; ran != tt.wantRan {
				t.Errorf("step ran = %v, want %v", ran, tt.wantRan)
			}
			if breakGlass != "" {
				recs := readAuditFile(t, e, st.ID)
				if !slices.ContainsFunc(recs, func(r AuditRecord) bool {
					return r.Event == AuditApproval && r.Decision == "bypassed (break glass)" && r.Output == breakGlass
				}) {
					t.Errorf("the bypass is not in the audit log: %+v", recs)
				}
			}
		})
	}
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	work := t.TempDir()
	rb := mustParse(t, `
title = "t"
[[phase]]
id = "p"
title = "P"
[[phase.step]]
id = "hang"
title = "Hang"
kind = "command"
timeout = "300ms"
run = """
trap '' TERM
sleep 600 &
echo $! > "$WORK/child.pid"
wait
"""
`)
	e := newTestEngine(t, rb, mustEnv(t, false, map[string]string{"WORK": work}, nil), Options{})
	st, err := e.Run(context.Background(), Target{Phase: "p"})
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || st.Status != StatusFailed {
		t.Fatalf("run: status %s err %v, want a timeout failure", st.Status, err)
	}
	if pid := readPID(t, filepath.Join(work, "child.pid")); !exited(pid) {
		t.Errorf("child %d survived the timeout", pid)
	}
}

func TestChecksReportFailures(t *testing.T) {
	pg := pgtest.Shared(t)
	dsn := pg.CreateDB(t, "rb_checks")
	pg.Exec(t, "DROP ROLE IF EXISTS rb_unprivileged")
	pg.Exec(t, "CREATE ROLE rb_unprivileged LOGIN")
	t.Cleanup(func() { pg.Exec(t, "DROP ROLE IF EXISTS rb_unprivileged") })
	degraded := (&fakeAPI{status: "degraded"}).server(t)
	bare := (&fakeAPI{status: "healthy", omitHeaders: true, secret: "s", user: "u", pass: "p"}).server(t)

	tests := []struct {
		name    string
		step    string
		vars    map[string]string
		wantErr string
		wantIs  error
	}{
		{"degraded health", `check = "http-health"` + "\nurl = \"${API_URL}\"", map[string]string{"API_URL": degraded.URL}, "service_unavailable", nil},
		{"unreachable API", `check = "http-health"` + "\nurl = \"${API_URL}\"", map[string]string{"API_URL": "http://127.0.0.1:1"}, "unreachable", ErrUnreachable},
		{"missing headers", `check = "security-headers"` + "\nurl = \"${API_URL}\"", map[string]string{"API_URL": bare.URL}, "X-Frame-Options missing", nil},
		{"wrong registration secret", `check = "registration"` + "\nurl = \"${API_URL}\"\nsecret = \"${S}\"\nname = \"n\"\nhostname = \"h\"",
			map[string]string{"API_URL": bare.URL, "S": "wrong"}, "401", ErrAuth},
		{"bad login", `check = "api-metrics"` + "\nurl = \"${API_URL}\"\nusername = \"u\"\npassword = \"${P}\"",
			map[string]string{"API_URL": bare.URL, "P": "wrong"}, "login as u", ErrAuth},
		{"no recent samples", `check = "api-metrics"` + "\nurl = \"${API_URL}\"\nusername = \"u\"\npassword = \"${P}\"",
			map[string]string{"API_URL": bare.URL, "P": "p"}, "no samples", nil},
		{"role without pg_monitor", `check = "pg-monitor"` + "\nrole = \"rb_unprivileged\"", map[string]string{"DATABASE_URL": dsn}, "GRANT pg_monitor TO rb_unprivileged", nil},
		{"missing role", `check = "pg-monitor"` + "\nrole = \"rb_nobody\"", map[string]string{"DATABASE_URL": dsn}, "does not exist", nil},
		{"database down", `check = "postgres"`, map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/x?connect_timeout=2"}, "connect", ErrUnreachable},
		{"undefined variable", `check = "postgres"` + "\ndatabase = \"${NOPE}\"", map[string]string{}, "does not define NOPE", nil},
		{"loopback-only env refuses a remote URL", `check = "http-health"` + "\nurl = \"http://192.0.2.1:8080\"", map[string]string{}, "loopback", nil},
		{"loopback-only env refuses a remote database", `check = "postgres"` + "\ndatabase = \"postgres://u@192.0.2.1/x\"", map[string]string{}, "loopback", nil},
		{"tls on plain http", `check = "tls-expiry"` + "\nurl = \"${API_URL}\"", map[string]string{"API_URL": bare.URL}, "https:// URL", nil},
		{"smoke not wired", `check = "smoke"`, map[string]string{}, "smoke suite not wired", nil},
		{"alert rules not evaluated", `check = "alerts-evaluated"` + "\nurl = \"${API_URL}\"\nusername = \"u\"\npassword = \"${P}\"",
			map[string]string{"API_URL": bare.URL, "P": "p"}, "not evaluated within the last 1m0s", nil},
		{"an Alertmanager without the test alert", `check = "alert-delivery"` + "\nurl = \"${API_URL}\"\nusername = \"u\"\npassword = \"${P}\"\ntimeout = \"6s\"",
			map[string]string{"API_URL": (&fakeAPI{status: "healthy", user: "u", pass: "p", amMissing: true}).server(t).URL, "P": "p"}, "1 of 2 Alertmanagers did not get the test alert", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := mustParse(t, "title = \"c\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\n"+tt.step+"\n")
			e := newTestEngine(t, rb, mustEnv(t, true, tt.vars, nil), Options{})
			st, err := e.Run(context.Background(), Target{Phase: "p"})
			if err == nil || st.Status != StatusFailed {
				t.Fatalf("check passed (status %s)", st.Status)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

// TestAlertChecksPass: the alert checks against an API that evaluates and delivers.
func TestAlertChecksPass(t *testing.T) {
	srv := (&fakeAPI{status: "healthy", user: "u", pass: "p", evaluatedAt: time.Now()}).server(t)
	for _, check := range []string{"alerts-evaluated", "alert-delivery"} {
		t.Run(check, func(t *testing.T) {
			rb := mustParse(t, "title = \"c\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \""+
				check+"\"\nurl = \"${API_URL}\"\nusername = \"u\"\npassword = \"${P}\"\n")
			e := newTestEngine(t, rb, mustEnv(t, true, map[string]string{"API_URL": srv.URL, "P": "p"}, nil), Options{})
			if st, err := e.Run(context.Background(), Target{Phase: "p"}); err != nil || st.Status != StatusSucceeded {
				t.Fatalf("status %s, %v", st.Status, err)
			}
		})
	}
}

func TestChecksWaitOutRateLimiting(t *testing.T) {
	tests := []struct {
		name    string
		limited int
		ok      bool
	}{
		{"two 429s are waited out", 2, true},
		{"a persistent 429 fails the check", rateLimitWaits + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok && testing.Short() {
				t.Skip("waits out five Retry-After seconds")
			}
			fake := &fakeAPI{status: "healthy", rateLimited: tt.limited}
			srv := fake.server(t)
			rb := mustParse(t, "title = \"c\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \"http-health\"\nurl = \"${API_URL}\"\n")
			e := newTestEngine(t, rb, mustEnv(t, true, map[string]string{"API_URL": srv.URL}, nil), Options{})
			st, err := e.Run(context.Background(), Target{Phase: "p"})
			if tt.ok != (err == nil) {
				t.Fatalf("run error %v (status %s), want ok=%v", err, st.Status, tt.ok)
			}
			if !tt.ok && !strings.Contains(err.Error(), "429") {
				t.Errorf("error %q does not name the 429", err)
			}
			fake.mu.Lock()
			left := fake.rateLimited
			fake.mu.Unlock()
			if want := max(tt.limited-rateLimitWaits-1, 0); left != want {
				t.Errorf("%d 429s left unserved, want %d: the check must wait out exactly what it may", left, want)
			}
		})
	}
}

func TestSQLExpectations(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "rb_expect")
	tests := []struct {
		sql    string
		expect string
		ok     bool
		msg    string
	}{
		{"SELECT 5", `{ value = "> 0" }`, true, ""},
		{"SELECT 0", `{ value = "> 0" }`, false, "expected value > 0, got 0"},
		{"SELECT 'abc'", `{ value = "> 0" }`, false, "not a number"},
		{"SELECT 1 WHERE false", `{ rows = "> 0" }`, false, "expected rows > 0, got 0"},
		{"SELECT true, NULL::int", `{ equals = [["t", "NULL"]] }`, true, ""},
		{"SELECT x FROM generate_series(1, 3) x", `{ equals = [["1"], ["2"], ["3"]], rows = "== 3" }`, true, ""},
		{"SELECT x FROM generate_series(1, 3) x", `{ equals = [["1"], ["2"]] }`, false, "expected rows"},
		{"SELECT * FROM no_such_table", `{ rows = "> 0" }`, false, "no_such_table"},
	}
	for _, tt := range tests {
		t.Run(tt.sql+" "+tt.expect, func(t *testing.T) {
			rb := mustParse(t, fmt.Sprintf("title = \"x\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"q\"\ntitle = \"Q\"\nkind = \"sql\"\nsql = %s\nexpect = %s\n",
				tomlString(tt.sql), tt.expect))
			e := newTestEngine(t, rb, mustEnv(t, true, map[string]string{"DATABASE_URL": dsn}, nil), Options{})
			_, err := e.Run(context.Background(), Target{Phase: "p"})
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestPlanRunsNothing(t *testing.T) {
	work := t.TempDir()
	rb := mustParse(t, `
title = "plan"
[[phase]]
id = "p"
title = "P"
[[phase.step]]
id = "ok"
title = "OK"
kind = "command"
destructive = true
run = 'touch "$WORK/ran"'
[[phase.step]]
id = "broken-shell"
title = "Broken shell"
kind = "command"
run = 'if then fi'
[[phase.step]]
id = "manual"
title = "Manual"
kind = "manual"
[[phase.step]]
id = "query"
title = "Query"
kind = "sql"
sql = "SELECT 1"
database = "${DB}"
expect = { rows = "== 1" }
[[phase.step]]
id = "unresolved"
title = "Unresolved"
kind = "check"
check = "http-health"
url = "${NOT_DEFINED}"
`)
	env := mustEnv(t, true, map[string]string{"WORK": work, "DB": "postgres://u:hunter22@127.0.0.1/x"}, nil)
	plan, err := newTestEngine(t, rb, env, Options{}).Plan(context.Background(), Target{Phase: "p"})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]PlanStep{}
	for _, ps := range plan {
		byID[ps.Step.ID] = ps
	}
	if ps := byID["ok"]; ps.Err != nil || !strings.Contains(strings.Join(ps.Would, "\n"), `touch "$WORK/ran"`) ||
		!strings.Contains(ps.Would[0], "destructive") {
		t.Errorf("ok: %+v", ps)
	}
	if ps := byID["broken-shell"]; ps.Err == nil || !strings.Contains(ps.Err.Error(), "syntax") {
		t.Errorf("broken-shell: err %v, want a syntax error", ps.Err)
	}
	if ps := byID["manual"]; ps.CannotSimulate == "" {
		t.Error("manual step listed as simulated")
	}
	if ps := byID["query"]; ps.Err != nil || strings.Contains(strings.Join(ps.Would, "\n"), "hunter22") {
		t.Errorf("query: %v / %q (secret shown?)", ps.Err, ps.Would)
	}
	if ps := byID["unresolved"]; ps.Err == nil || !strings.Contains(ps.Err.Error(), "NOT_DEFINED") {
		t.Errorf("unresolved: err %v", ps.Err)
	}
	if _, err := os.Stat(filepath.Join(work, "ran")); err == nil {
		t.Error("dry run executed a command")
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// exited waits (up to 5s: signals are delivered asynchronously) for pid to be gone or a zombie.
func exited(pid int) bool {
	for range 100 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the parenthesised command name: "pid (comm) S ...".
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		if err := syscall.Kill(pid, 0); err != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// TestAlertmanagerCheck against a real Alertmanager: ready passes and names its version; a second
// URL that does not answer fails the check, naming it.
func TestAlertmanagerCheck(t *testing.T) {
	am := amtest.Start(t)
	for _, tt := range []struct {
		name, urls, wantErr string
	}{
		{"one ready", am.URL, ""},
		{"one of two away", am.URL + ", http://127.0.0.1:1", "1 of 2 Alertmanagers not answering: http://127.0.0.1:1"},
		{"none configured", "", "no Alertmanager URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rb := mustParse(t, "title = \"c\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \"alertmanager\"\nurl = \"${AM}\"\n")
			rec := &recorder{}
			e := newTestEngine(t, rb, mustEnv(t, true, map[string]string{"AM": tt.urls}, nil), Options{OnEvent: rec.on})
			st, err := e.Run(context.Background(), Target{Phase: "p"})
			if tt.wantErr == "" {
				if err != nil || st.Status != StatusSucceeded {
					t.Fatalf("status %s, %v", st.Status, err)
				}
				if out := strings.Join(rec.lines(), "\n"); !strings.Contains(out, "ready, Alertmanager 0.") {
					t.Errorf("output does not name the version:\n%s", out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
