package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/demo"
	"github.com/pganalytics/pganalytics/runbook"
)

// TestRunbookStagingAgainstDemoStack runs the shipped runbook's staging phase non-interactively, as
// docs/runbook.md tells an operator to, against a running stack through the demo environment (which
// imports the stack's demo.env from PGACTL_STATE_DIR), and checks from the persisted run state that
// every step of the phase ran and succeeded.
func TestRunbookStagingAgainstDemoStack(t *testing.T) {
	t.Parallel()
	// The demo's default interval: the smoke step's metrics-freshness check allows two of them.
	s := startStack(t, 5*time.Second, true)
	s.waitCycles(1)

	env := commandEnv(t, "PGACTL_STATE_DIR="+s.stateDir)
	stdout, stderr, code := runPgactl(t, 5*time.Minute, env, "runbook", "run", "staging", "--env", "demo", "--yes")
	if code != 0 {
		t.Fatalf("pgactl runbook run staging --env demo --yes: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	stdout, stderr, code = runPgactl(t, time.Minute, env, "runbook", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("pgactl runbook status -o json: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var run runbook.RunState
	if err := json.Unmarshal([]byte(stdout), &run); err != nil {
		t.Fatalf("decode pgactl runbook status -o json: %v\n%s", err, stdout)
	}
	if run.Target != "staging" || run.Env != "demo" || run.Status != runbook.StatusSucceeded {
		t.Errorf("run %s: target %q, env %q, status %q (%s); want staging, demo, succeeded", run.ID, run.Target, run.Env, run.Status, run.Error)
	}

	rb, err := runbook.Default()
	if err != nil {
		t.Fatal(err)
	}
	phase, ok := rb.Phase("staging")
	if !ok {
		t.Fatal("the shipped runbook has no staging phase")
	}
	var want, got []string
	for _, st := range phase.Steps {
		want = append(want, st.ID)
	}
	for _, st := range run.Steps {
		got = append(got, st.Step)
		if st.Phase != "staging" || st.Status != runbook.StatusSucceeded {
			t.Errorf("step %s/%s (%s): status %q after %d attempt(s): %s", st.Phase, st.Step, st.Kind, st.Status, st.Attempts, st.Error)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the run's steps are %v, want the staging phase's %v", got, want)
	}
	if t.Failed() {
		out, _, _ := runPgactl(t, time.Minute, env, "runbook", "log")
		t.Logf("pgactl runbook log:\n%s", out)
		return
	}
	t.Logf("run %s: %d staging steps succeeded", run.ID, len(run.Steps))

	// The run as documents: JUnit for CI (a test case per step, none failed), Markdown for people.
	junit, stderr, code := runPgactl(t, time.Minute, env, "runbook", "report", "-o", "junit")
	if code != 0 {
		t.Fatalf("pgactl runbook report -o junit: exit %d: %s", code, stderr)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name      string `xml:"name,attr"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(junit), &suites); err != nil {
		t.Fatalf("the JUnit report is not XML: %v\n%s", err, junit)
	}
	if suites.Tests != len(want) || suites.Failures != 0 || len(suites.Suites) != 1 || suites.Suites[0].Name != "staging" ||
		len(suites.Suites[0].Cases) != len(want) {
		t.Errorf("JUnit report: %d tests, %d failures, suites %+v; want %d tests in suite staging, none failed", suites.Tests, suites.Failures, suites.Suites, len(want))
	}
	md, stderr, code := runPgactl(t, time.Minute, env, "runbook", "report", "-o", "markdown")
	if code != 0 {
		t.Fatalf("pgactl runbook report -o markdown: exit %d: %s", code, stderr)
	}
	for _, id := range want {
		if !strings.Contains(md, "| `staging/"+id+"` ") {
			t.Errorf("the Markdown report has no row for staging/%s", id)
		}
	}
	for _, secret := range []string{s.env.Vars["PGACTL_PASSWORD"], s.env.Vars["REGISTRATION_SECRET"]} {
		if strings.Contains(md, secret) || strings.Contains(junit, secret) {
			t.Error("a report holds a secret")
		}
	}
}

// TestRollbackTriggerWhenCollectorStops: the monitoring phase's rollback-triggers step passes on a
// healthy stack; with the collector gone it trips "Collectors unable to push", with the evidence,
// and names the rollback.
func TestRollbackTriggerWhenCollectorStops(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	s := startStack(t, interval, false)
	s.waitCycles(3)
	env := commandEnv(t, "PGACTL_STATE_DIR="+s.stateDir)
	run := func() (string, int) {
		out, errOut, code := runPgactl(t, time.Minute, env, "runbook", "run", "monitoring/rollback-triggers", "--env", "demo", "--yes")
		return out + errOut, code
	}
	if out, code := run(); code != 0 {
		t.Fatalf("rollback triggers on a healthy stack: exit %d\n%s", code, out)
	}
	s.kill(demo.ProcessCollector, syscall.SIGKILL)
	time.Sleep(12 * time.Second) // past the 3 intervals (10 s at least) a collector may stay silent
	out, code := run()
	if code != 1 || !strings.Contains(out, "TRIPPED  Collectors unable to push") || !strings.Contains(out, collectorName+" silent") ||
		!strings.Contains(out, "pgactl rollback --env demo") {
		t.Fatalf("rollback triggers with the collector gone: exit %d, want 1 naming the silent collector and the rollback\n%s", code, out)
	}
	t.Logf("with the collector gone:\n%s", out)
	for _, quiet := range []string{"Metrics data loss detected", "DB connection errors > 5/min", "API service crashes repeatedly"} {
		if !strings.Contains(out, "ok       "+quiet) {
			t.Errorf("%q tripped too, or is missing:\n%s", quiet, out)
		}
	}
}

// TestWatchRecordsRoundsAndBaseline runs the monitoring phase as a watch, `--every 2s --for 12s`:
// rounds are recorded with their figures, the baseline is written, and it compares against itself.
func TestWatchRecordsRoundsAndBaseline(t *testing.T) {
	t.Parallel()
	s := startStack(t, time.Second, true)
	s.waitCycles(3)
	env := commandEnv(t, "PGACTL_STATE_DIR="+s.stateDir)
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	// A round every 2 s is ~450 API requests a minute as shared runs, past the API's 100 per minute
	// for one user: the fast rounds run locally; the last watch below is shared.
	out, errOut, code := runPgactl(t, 2*time.Minute, env, "runbook", "watch", "monitoring", "--env", "demo",
		"--every", "2s", "--for", "12s", "--record-baseline", baseline, "--local")
	if code != 0 {
		t.Fatalf("pgactl runbook watch: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("pgactl runbook watch:\n%s", out)
	if n := strings.Count(out, "\nround "); n < 4 {
		t.Errorf("%d rounds in 12 s every 2 s, want at least 4", n)
	}
	raw, err := os.ReadFile(baseline)
	if err != nil {
		t.Fatal(err)
	}
	var b runbook.Sample
	if err := json.Unmarshal(raw, &b); err != nil || b.APIRSSBytes <= 0 || b.DatabaseBytes <= 0 || b.CollectorSuccess != 1 {
		t.Fatalf("baseline %s: %v %+v", raw, err, b)
	}

	// A watch whose process dies (kill -9) is continued by --resume until its end, rounds kept.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	killed := exec.CommandContext(ctx, bin("pgactl"), "runbook", "watch", "monitoring", "--env", "demo", "--every", "2s", "--for", "14s", "--local")
	killed.Env = env
	_ = killed.Run() // killed after 5 s
	cancel()
	out, errOut, code = runPgactl(t, time.Minute, env, "runbook", "watch", "--resume", "--local")
	if code != 0 || !strings.Contains(out, "resuming watch") || !strings.Contains(out, "succeeded") {
		t.Fatalf("watch --resume after kill -9: exit %d\n%s\n%s", code, out, errOut)
	}
	if m := regexp.MustCompile(`rounds so far`).FindString(out); m == "" {
		t.Errorf("the resumed watch did not say how far it had come:\n%s", out)
	}
	if n := strings.Count(out, "\nround "); n < 2 {
		t.Errorf("the resumed watch ran %d more rounds, want at least 2:\n%s", n, out)
	}

	// Against its own baseline, one more short watch flags nothing; the watch's state says so.
	out, errOut, code = runPgactl(t, time.Minute, env, "runbook", "watch", "monitoring", "--env", "demo",
		"--every", "2s", "--for", "2s", "--baseline", baseline, "-o", "json", "--local")
	var w runbook.WatchState
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || w.Status != runbook.StatusSucceeded || len(w.Rounds) != 1 || len(w.Findings) != 0 {
		t.Fatalf("watch against its own baseline: exit %d, %+v\n%s\n%s", code, w, out, errOut)
	}

	// Shared (the default), a watch's rounds are runs on the API that the whole team sees.
	out, errOut, code = runPgactl(t, time.Minute, env, "runbook", "watch", "monitoring", "--env", "demo",
		"--every", "2s", "--for", "2s", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || len(w.Rounds) != 1 {
		t.Fatalf("shared watch: exit %d\n%s\n%s", code, out, errOut)
	}
	if run, err := s.apiClient(t).RunbookRun(t.Context(), w.Rounds[0].Run); err != nil || run.Status != "succeeded" {
		t.Errorf("the shared watch's round on the API: %+v, %v", run, err)
	}
}
