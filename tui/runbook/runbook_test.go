package runbook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

func newView(t *testing.T, r Runner, role string, phases func(string) bool) (*Model, *fake.Driver) {
	t.Helper()
	m := New(Options{Env: fake.Env(t), Runner: r, Title: "Runbook", Phases: phases})
	m.SetSize(100, 30)
	m.SetRole(role)
	d := fake.NewDriver(t, m)
	d.Until("history", func() bool { return m.lastRun != nil && (len(m.lastRun) > 0 || !strings.Contains(m.View(), "staging")) })
	return m, d
}

func only(id string) func(string) bool { return func(p string) bool { return p == id } }

func (m *Model) status(ref string) runbook.Status { return m.steps[ref].status }

func TestHistoryShowsWhereTheLastRunStopped(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleOperator, only("staging"))
	d.Until("history applied", func() bool { return m.status("staging/health") == runbook.StatusFailed })
	v := m.View()
	for _, want := range []string{"DONE", "deploy-api", "FAIL", "last run " + fake.PastRunID + " failed at staging/health: c resumes", "1/4 done · 1 failed"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
}

func TestRunStepStreamsOutput(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleOperator, only("staging"))
	d.Send(fake.Press("j")) // health
	d.Send(fake.Press("enter"))
	if !m.Busy() {
		t.Fatal("enter did not start a run")
	}
	d.Until("the run's end", func() bool { return !m.Busy() })
	if got := m.status("staging/health"); got != runbook.StatusSucceeded {
		t.Fatalf("health is %s, want succeeded", got)
	}
	v := m.View()
	for _, want := range []string{"200 OK: status healthy", "Run 20260227T150405Z-c0ffee of staging/health succeeded", "1.5s"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
}

func TestPrompts(t *testing.T) {
	tests := []struct {
		name      string
		phase     string
		fail      map[string]string
		keys      [][]string // answered one prompt after another
		want      map[string]runbook.Status
		wantAfter string
	}{
		{"manual done", "staging", nil, [][]string{{"y"}},
			map[string]runbook.Status{"staging/dashboards": runbook.StatusSucceeded}, "succeeded"},
		{"manual skipped", "staging", nil, [][]string{{"s"}},
			map[string]runbook.Status{"staging/dashboards": runbook.StatusSkipped}, "succeeded"},
		{"manual aborted", "staging", nil, [][]string{{"a"}},
			map[string]runbook.Status{"staging/dashboards": runbook.StatusRunning}, "aborted"},
		{"destructive typed", "rollback", nil, [][]string{{"y"}, {"r", "e", "s", "t", "o", "r", "e", "enter"}},
			map[string]runbook.Status{"rollback/restore": runbook.StatusSucceeded, "rollback/verify": runbook.StatusSucceeded}, "succeeded"},
		{"destructive wrong word does not run", "rollback", nil, [][]string{{"y"}, {"y", "enter", "esc"}},
			map[string]runbook.Status{"rollback/restore": runbook.StatusPending}, "aborted"},
		{"failed then retried then skipped", "rollback", map[string]string{"stop": "exit status 1"}, [][]string{{"y"}, {"s"}, {"y"}, {"esc"}},
			map[string]runbook.Status{"rollback/stop": runbook.StatusSkipped}, "aborted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fake.NewRunner()
			r.Fail = tt.fail
			m, d := newView(t, r, api.RoleAdmin, only(tt.phase))
			d.Send(fake.Press("p"))
			for i, keys := range tt.keys {
				d.Until("prompt", func() bool { return m.prompting() || !m.Busy() })
				if !m.prompting() {
					t.Fatalf("prompt %d never came:\n%s", i, m.View())
				}
				for _, k := range keys {
					d.Send(fake.Press(k))
				}
			}
			d.Until("the run's end", func() bool { return !m.Busy() })
			for ref, want := range tt.want {
				if got := m.status(ref); got != want && !(want == runbook.StatusRunning && got == runbook.StatusInterrupted) {
					t.Errorf("%s is %s, want %s", ref, got, want)
				}
			}
			if v := m.View(); !strings.Contains(v, tt.wantAfter) {
				t.Errorf("screen lacks %q:\n%s", tt.wantAfter, v)
			}
		})
	}
}

func TestPromptShowsWhatItAsks(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleAdmin, only("rollback"))
	d.Send(fake.Press("p"))
	d.Until("manual prompt", m.prompting)
	if v := m.View(); !strings.Contains(v, "Manual step rollback/assess") || !strings.Contains(v, "WAIT") {
		t.Errorf("manual prompt:\n%s", v)
	}
	d.Send(fake.Press("y"))
	d.Until("destructive prompt", func() bool { return m.prompting() && m.run.prompt.Kind == runbook.PromptDestructive })
	d.Send(fake.Press("x"))
	v := m.View()
	for _, want := range []string{"DESTRUCTIVE step rollback/restore", "Type restore and press enter", "> x"} {
		if !strings.Contains(v, want) {
			t.Errorf("destructive prompt lacks %q:\n%s", want, v)
		}
	}
	d.Send(fake.Press("esc"))
	d.Until("abort", func() bool { return !m.Busy() })
}

func TestViewerCannotRun(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleViewer, only("staging"))
	for _, k := range []string{"enter", "p", "c"} {
		d.Send(fake.Press(k))
		if m.Busy() {
			t.Fatalf("%s started a run for a viewer", k)
		}
		if !strings.Contains(m.View(), "Read-only: running the runbook needs the operator or admin role") {
			t.Errorf("%s: no explanation:\n%s", k, m.View())
		}
	}
	for _, b := range m.ShortHelp() {
		if b.Enabled() && strings.HasPrefix(b.Help().Desc, "run") {
			t.Errorf("help offers %q to a viewer", b.Help().Desc)
		}
	}
}

func TestResume(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleOperator, only("staging"))
	d.Send(fake.Press("c"))
	d.Until("manual prompt", m.prompting)
	if got := m.status("staging/deploy-api"); got != runbook.StatusSucceeded {
		t.Errorf("resume reset deploy-api to %s", got)
	}
	if got := m.status("staging/health"); got != runbook.StatusSucceeded {
		t.Errorf("health is %s after resuming, want it rerun and succeeded", got)
	}
	d.Send(fake.Press("y"))
	d.Until("the run's end", func() bool { return !m.Busy() })
	if _, ok := m.lastRun["staging"]; ok {
		t.Error("a succeeded run is still offered for resuming")
	}
}

// TestEngineRunner drives the real runbook engine: a command step's output streams into the view,
// a manual step is confirmed, the state lands in the state directory, and a new view (a restarted
// console) shows where an aborted run stopped and resumes it.
func TestEngineRunner(t *testing.T) {
	book, err := runbook.Parse("test.toml", []byte(`
title = "engine test"
[[phase]]
id = "p"
title = "Phase"
[[phase.step]]
id = "hello"
title = "Say hello"
kind = "command"
run = "echo hello from bash; echo second line"
[[phase.step]]
id = "confirm"
title = "Confirm by hand"
kind = "manual"
[[phase.step]]
id = "bye"
title = "Say bye"
kind = "command"
run = "echo bye"
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env, err := runbook.ParseEnvironment("test-env.toml", []byte("description = \"test\"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	runner := &EngineRunner{Book: book, Environment: env, StateDir: dir, Operator: "tester", BreakGlass: "test: no second person here"}

	m, d := newView(t, runner, api.RoleAdmin, nil)
	d.Send(fake.Press("p"))
	d.Until("manual prompt", m.prompting)
	if v := m.View(); !strings.Contains(v, "DONE") || m.status("p/hello") != runbook.StatusSucceeded {
		t.Fatalf("hello did not succeed:\n%s", v)
	}
	if got := m.steps["p/hello"].output.Values(); len(got) != 2 || got[0] != "hello from bash" {
		t.Errorf("output of hello = %q", got)
	}
	d.Send(fake.Press("a")) // abort at the manual step
	d.Until("the run's end", func() bool { return !m.Busy() })

	runs, err := (&runbook.Store{Dir: dir}).List(t.Context())
	if err != nil || len(runs) != 1 || runs[0].Status != runbook.StatusAborted {
		t.Fatalf("persisted runs = %v, %v; want one aborted run", runs, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "runs", runs[0].ID))
	if len(entries) == 0 {
		t.Error("no run directory")
	}

	// A restarted console shows where the run stopped, and resumes it.
	m2, d2 := newView(t, runner, api.RoleAdmin, nil)
	d2.Until("history", func() bool { return m2.lastRun["p"] != nil })
	if v := m2.View(); !strings.Contains(v, "aborted at p/confirm: c resumes") {
		t.Errorf("restarted view does not show where the run stopped:\n%s", v)
	}
	d2.Send(fake.Press("c"))
	d2.Until("manual prompt", m2.prompting)
	d2.Send(fake.Press("y"))
	d2.Until("the run's end", func() bool { return !m2.Busy() })
	if m2.status("p/bye") != runbook.StatusSucceeded || m2.lastRun["p"] != nil {
		t.Errorf("resumed run did not finish:\n%s", m2.View())
	}
}

func TestQuitWaitsForTheInterruptedRun(t *testing.T) {
	m, d := newView(t, fake.NewRunner(), api.RoleAdmin, only("rollback"))
	d.Send(fake.Press("p"))
	d.Until("manual prompt", m.prompting)
	m.run.cancel() // what quitting does to the console's context
	done := make(chan struct{})
	go func() { m.Wait(5 * time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the run was cancelled")
	}
	d.Until("the run's end", func() bool { return !m.Busy() })
	if !errors.Is(m.opts.Context.Err(), nil) {
		t.Fatal("the view's own context was cancelled")
	}
}

// prompting reports an open prompt of any kind.
func (m *Model) prompting() bool { return m.run != nil && m.run.prompt != nil }

// TestConsoleWatch: w watches the selected phase in the background, rounds shown as they come; a
// watch the console left when it quit is continued by the next console.
func TestConsoleWatch(t *testing.T) {
	book, err := runbook.Parse("watch.toml", []byte(`
title = "w"
[[phase]]
id = "monitoring"
title = "Monitoring"
[[phase.step]]
id = "check"
title = "A quick check"
kind = "command"
run = "echo fine"
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env, err := runbook.ParseEnvironment("test-env.toml", []byte("description = \"test\"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	runner := &EngineRunner{Book: book, Environment: env, StateDir: dir, Operator: "tester",
		WatchEvery: 300 * time.Millisecond, WatchFor: 3 * time.Second}

	m, d := newView(t, runner, api.RoleOperator, nil)
	d.Send(fake.Press("w"))
	d.Until("two rounds", func() bool { return m.watch != nil && m.watch.last != nil && m.watch.last.N >= 2 })
	if v := m.View(); !strings.Contains(v, "◷ watching monitoring every 300ms") || !strings.Contains(v, "round 2 succeeded") {
		t.Errorf("the watch's status line:\n%s", v)
	}
	if m.Busy() {
		t.Error("the watch makes the view busy: quitting would be refused, yet a watch continues in the next console")
	}
	m.watch.cancel() // the console quits
	d.Until("the watch stopped", func() bool { return m.watch == nil })

	left, err := runner.UnfinishedWatch()
	if err != nil || left == nil || left.Status != runbook.StatusInterrupted {
		t.Fatalf("the interrupted watch: %+v, %v", left, err)
	}
	m2, d2 := newView(t, runner, api.RoleOperator, nil)
	d2.Until("the watch continued", func() bool {
		return m2.watch != nil && m2.watch.last != nil && m2.watch.last.N > left.Rounds[len(left.Rounds)-1].N
	})
	d2.Until("the watch's end", func() bool { return m2.watch == nil })
	if !strings.Contains(m2.notice, "succeeded") {
		t.Errorf("after the watch: %q", m2.notice)
	}
}

// TestFollowsASharedRunExecutedElsewhere: a run another operator executes shows live, step by step,
// with who executes it, until it ends.
func TestFollowsASharedRunExecutedElsewhere(t *testing.T) {
	state := func(status runbook.Status, steps ...runbook.Status) *runbook.RunState {
		st := &runbook.RunState{ID: "20260227T150000Z-0b0b0b", Runbook: "fixture", Env: "demo", Target: "staging",
			Operator: "bob (bob@desk)", Status: status, StartedAt: fake.Now}
		if status == runbook.StatusRunning {
			st.Lease = &api.RunbookLease{User: "bob", Holder: "bob (bob@desk)"}
		}
		for i, id := range []string{"deploy-api", "health", "register", "dashboards"} {
			s := runbook.StepState{Phase: "staging", Step: id, Status: runbook.StatusPending}
			if i < len(steps) {
				s.Status = steps[i]
			}
			st.Steps = append(st.Steps, s)
		}
		return st
	}
	r := fake.NewRunner()
	r.Remote = []*runbook.RunState{
		state(runbook.StatusRunning, runbook.StatusSucceeded, runbook.StatusRunning),
		state(runbook.StatusRunning, runbook.StatusSucceeded, runbook.StatusSucceeded, runbook.StatusAwaitingApproval),
		state(runbook.StatusSucceeded, runbook.StatusSucceeded, runbook.StatusSucceeded, runbook.StatusSucceeded, runbook.StatusSucceeded),
	}
	m, d := newView(t, r, api.RoleViewer, only("staging"))
	d.Until("the followed run's end", func() bool { return m.remote == nil && strings.Contains(m.notice, "succeeded") })
	if m.status("staging/register") != runbook.StatusSucceeded || !strings.Contains(m.notice, "executed by bob") {
		t.Errorf("after the followed run: register %s, notice %q", m.status("staging/register"), m.notice)
	}

	r.Remote = r.Remote[:2] // still waiting at register
	m2, d2 := newView(t, r, api.RoleViewer, only("staging"))
	d2.Until("the approval shows", func() bool { return m2.status("staging/register") == runbook.StatusAwaitingApproval })
	if v := m2.View(); !strings.Contains(v, "◉ following run 20260227T150000Z-0b0b0b of staging, executed by bob (bob@desk) · staging/register a") ||
		!strings.Contains(v, "APPR") {
		t.Errorf("the followed run on screen:\n%s", v)
	}
}
