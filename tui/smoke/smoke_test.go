package smoke

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/pganalytics/pganalytics/tui/internal/fake"
	"github.com/pganalytics/pganalytics/tui/widget"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

// drive runs cmd and the run's events it leads to, as the program would.
func drive(m *Model, cmd tea.Cmd) {
	var queue []tea.Cmd
	queue = append(queue, cmd)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		switch msg := c().(type) {
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case widget.Event[event]:
			_, next := m.Update(msg)
			queue = append(queue, next)
		}
	}
}

func newModel(t *testing.T, s Suite) *Model {
	m := New(Options{Env: fake.Env(t), Suite: s})
	m.SetSize(80, 20)
	return m
}

func TestRun(t *testing.T) {
	m := newModel(t, fake.SmokeSuite())
	if v := m.View(); !strings.Contains(v, "not run yet") || strings.Count(v, "  ·") != 6 {
		t.Fatalf("before a run every check is pending:\n%s", v)
	}
	_, cmd := m.Update(fake.Press("enter"))
	if !m.Running() || !strings.Contains(m.View(), "running 1/6") {
		t.Fatalf("enter did not start the suite:\n%s", m.View())
	}
	drive(m, cmd)
	if m.Running() {
		t.Fatal("still running after the last result")
	}
	v := m.View()
	for _, want := range []string{"PASS  health", "FAIL  rbac", "SKIP  tls-certificate", "4 passed", "1 FAILED", "1 skipped", "1.8s"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
}

func TestSelectedCheckShowsItsWholeReason(t *testing.T) {
	m := newModel(t, fake.SmokeSuite())
	_, cmd := m.Update(fake.Press("r"))
	drive(m, cmd)
	for range 4 {
		m.Update(fake.Press("j"))
	}
	v := m.View()
	if !strings.Contains(v, "rbac: a viewer gets 403") || !strings.Contains(v, "fix the API's role check") {
		t.Errorf("footer does not describe rbac with its reason:\n%s", v)
	}
}

func TestSuiteThatCannotRun(t *testing.T) {
	s := fake.SmokeSuite()
	s.Err = errors.New("smoke: api unreachable: connection refused")
	m := newModel(t, s)
	_, cmd := m.Update(fake.Press("enter"))
	drive(m, cmd)
	if v := m.View(); !strings.Contains(v, "The suite could not run: smoke: api unreachable") {
		t.Errorf("error not shown:\n%s", v)
	}
}

func TestUnavailable(t *testing.T) {
	m := New(Options{Env: fake.Env(t), Unavailable: "no admin credentials"})
	m.SetSize(80, 10)
	_, cmd := m.Update(fake.Press("enter"))
	if cmd != nil || !strings.Contains(m.View(), "not available: no admin credentials") {
		t.Errorf("unavailable suite:\n%s", m.View())
	}
}
