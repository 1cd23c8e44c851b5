package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
	"github.com/pganalytics/pganalytics/tui/widget"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // clocks on screen
	m.Run()
}

type session struct {
	id  Identity
	err error
}

func (s session) Login(context.Context) (Identity, error) { return s.id, s.err }

func newConsole(t *testing.T, role string) (*App, *fake.API) {
	t.Helper()
	f := fake.Replication()
	f.CollectorsR = fake.Collectors()
	f.AlertsR = fake.Alerts()
	fo := fake.Failover()
	f.Topology.Clusters, f.History, f.EventsR = fo.Topology.Clusters, fo.History, fo.EventsR
	app := New(Options{
		Context: t.Context(), Session: session{id: Identity{User: "alice", Role: role}}, API: f,
		APIURL: "http://127.0.0.1:8080", User: "alice", Theme: fake.Theme(), Now: fake.Clock,
		Smoke: fake.SmokeSuite(), Runner: fake.NewRunner(),
	})
	return app, f
}

// step is one interaction of a golden test: keys to type, then text to wait for on screen.
type step struct {
	keys    []string
	waitFor []string
}

// TestGolden renders every view through a real program at 80×24 and 160×48 and compares the last
// frame with testdata/TestGolden/*.golden (go test ./tui/... -update rewrites them).
func TestGolden(t *testing.T) {
	loaded := step{waitFor: []string{"alice (admin)", "● live", "7.5 MiB", "6 Aler", "(2)"}}
	views := []struct {
		name  string
		steps []step
	}{
		{"replication", []step{loaded}},
		{"replication_detail", []step{loaded, {keys: []string{"j", "j", "j", "enter"}, waitFor: []string{"replay lag history"}}}},
		{"topology", []step{loaded, {keys: []string{"2"}, waitFor: []string{"east-cascade", "split brain over"}}}},
		{"topology_history", []step{loaded, {keys: []string{"2"}, waitFor: []string{"east-cascade"}},
			{keys: []string{"p", "p", "p"}, waitFor: []string{"SPLIT BRAIN", "events up to"}}}},
		{"runbook", []step{loaded, {keys: []string{"3"}, waitFor: []string{"↺ last run"}},
			{keys: []string{"j", "enter"}, waitFor: []string{"staging/health succeeded"}}}},
		{"smoke", []step{loaded, {keys: []string{"4", "enter"}, waitFor: []string{"4 passed"}}}},
		{"collectors", []step{loaded, {keys: []string{"5"}, waitFor: []string{"prod-west", "STALE"}}}},
		{"alerts", []step{loaded, {keys: []string{"6"}, waitFor: []string{"CollectorStale", "evaluated"}}}},
		{"rollback", []step{loaded, {keys: []string{"7", "p"}, waitFor: []string{"Manual step rollback/assess"}}}},
		{"help", []step{loaded, {keys: []string{"?"}, waitFor: []string{"Everywhere"}}}},
	}
	sizes := []struct{ w, h int }{{80, 24}, {160, 48}}
	for _, v := range views {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s_%dx%d", v.name, sz.w, sz.h), func(t *testing.T) {
				app, _ := newConsole(t, api.RoleAdmin)
				tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(sz.w, sz.h))
				for _, s := range v.steps {
					for _, k := range s.keys {
						tm.Send(fake.Press(k))
					}
					teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
						for _, w := range s.waitFor {
							if !bytes.Contains(b, []byte(w)) {
								return false
							}
						}
						return true
					}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
				}
				if err := tm.Quit(); err != nil {
					t.Fatal(err)
				}
				final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
				golden.RequireEqual(t, []byte(final.View()))
			})
		}
	}
}

// drive runs the console without a terminal until it has loaded everything the header and the
// replication view show.
func drive(t *testing.T, app *App) *fake.Driver {
	t.Helper()
	app.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	d := fake.NewDriver(t, app)
	d.Until("loaded", func() bool {
		v := app.View()
		return strings.Contains(v, "7.5 MiB") && app.loggedIn && strings.Contains(v, "(2)")
	})
	return d
}

func TestShellKeys(t *testing.T) {
	tests := []struct {
		name       string
		keys       []string
		wantActive int
		wantQuit   bool
		wantText   string
	}{
		{"starts on replication", nil, 0, false, "[1 Replication]"},
		{"tab goes right", []string{"tab"}, 1, false, "[2 Topology"},
		{"shift+tab wraps left", []string{"shift+tab"}, 7, false, "[8 Appro"},
		{"number keys", []string{"5"}, 4, false, "[5 Collectors]"},
		{"6 then tab", []string{"6", "tab"}, 6, false, "[7 Rollback]"},
		{"? shows the full help", []string{"?"}, 0, false, "previous view"},
		{"q quits when idle", []string{"q"}, 0, true, ""},
		{"ctrl+c quits when idle", []string{"ctrl+c"}, 0, true, ""},
		{"a filter keeps q and digits", []string{"/", "q", "2"}, 0, false, "/q2"},
		{"esc ends the filter, then q quits", []string{"/", "x", "esc", "q"}, 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, _ := newConsole(t, api.RoleAdmin)
			d := drive(t, app)
			for _, k := range tt.keys {
				d.Send(fake.Press(k))
			}
			if app.active != tt.wantActive {
				t.Errorf("active view %d, want %d", app.active, tt.wantActive)
			}
			if app.quitting != tt.wantQuit {
				t.Errorf("quitting = %v, want %v", app.quitting, tt.wantQuit)
			}
			if tt.wantQuit && app.ctx.Err() == nil {
				t.Error("quitting did not cancel the console's context")
			}
			if v := app.View(); !strings.Contains(v, tt.wantText) {
				t.Errorf("screen lacks %q:\n%s", tt.wantText, v)
			}
		})
	}
}

func TestQuitRefusedMidStep(t *testing.T) {
	app, _ := newConsole(t, api.RoleOperator)
	d := drive(t, app)
	for _, k := range []string{"7", "p"} {
		d.Send(fake.Press(k))
	}
	d.Until("a step waiting", func() bool { return strings.Contains(app.View(), "Manual step rollback/assess") })
	d.Send(fake.Press("1")) // another view: the run goes on and still blocks quitting
	d.Send(fake.Press("q"))
	if app.quitting || !strings.Contains(app.View(), "A step is running: quitting is refused") {
		t.Fatalf("q mid-step: quitting=%v\n%s", app.quitting, app.View())
	}
	d.Send(fake.Press("ctrl+c"))
	if app.quitting || !strings.Contains(app.View(), "press ctrl+c again within 2s") {
		t.Fatalf("first ctrl+c mid-step: quitting=%v\n%s", app.quitting, app.View())
	}
	d.Send(fake.Press("ctrl+c"))
	if !app.quitting || !app.AbandonedStep() {
		t.Fatalf("a second ctrl+c within 2s did not force quitting (quitting=%v, abandoned=%v)", app.quitting, app.AbandonedStep())
	}
	app.Close(5 * time.Second)
}

func TestSecondCtrlCAfterTheWindowIsRefused(t *testing.T) {
	app, _ := newConsole(t, api.RoleOperator)
	now := fake.Now
	app.now = func() time.Time { return now }
	d := drive(t, app)
	d.Send(fake.Press("7"))
	d.Send(fake.Press("p"))
	d.Until("a step waiting", func() bool { return strings.Contains(app.View(), "Manual step rollback/assess") })
	d.Send(fake.Press("ctrl+c"))
	now = now.Add(3 * time.Second)
	d.Send(fake.Press("ctrl+c"))
	if app.quitting {
		t.Fatal("a ctrl+c 3s after the first forced quitting")
	}
}

func TestConnectionBanner(t *testing.T) {
	app, f := newConsole(t, api.RoleAdmin)
	f.SetErr(fake.ErrRefused)
	app.Update(tea.WindowSizeMsg{Width: 100, Height: 24})
	d := fake.NewDriver(t, app)
	d.Until("banner", func() bool { return strings.Contains(app.View(), "CONNECTION LOST") })
	v := app.View()
	for _, want := range []string{"✕ offline", "api unreachable", "reconnecting in 1.0s"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
	// The API comes back: the next poll clears the banner.
	f.SetErr(nil)
	d.Until("reconnected", func() bool {
		v := app.View()
		return !strings.Contains(v, "CONNECTION LOST") && strings.Contains(v, "prod-east")
	})
}

func TestLoginRefused(t *testing.T) {
	app, _ := newConsole(t, api.RoleAdmin)
	app.session = session{err: fmt.Errorf("%w: invalid credentials", conn.ErrAuth)}
	app.Update(tea.WindowSizeMsg{Width: 120, Height: 24})
	d := fake.NewDriver(t, app)
	d.Until("banner", func() bool { return strings.Contains(app.View(), "LOGIN REFUSED") })
	if v := app.View(); !strings.Contains(v, "PGACTL_USERNAME") || !strings.Contains(v, "✕ offline") {
		t.Errorf("login banner:\n%s", v)
	}
}

func TestLoginRetriedWhenUnreachable(t *testing.T) {
	app, _ := newConsole(t, api.RoleAdmin)
	_, cmd := app.Update(identityMsg{err: errors.New("api unreachable: connection refused")})
	if cmd == nil {
		t.Fatal("an unreachable login is not retried")
	}
	if m, _ := app.failure(); m.Source != conn.SourceLogin || m.RetryIn != time.Second {
		t.Errorf("failure = %+v, want the login retrying in 1s", m)
	}
}

func TestViewerIsReadOnly(t *testing.T) {
	app, f := newConsole(t, api.RoleViewer)
	d := drive(t, app)
	d.Send(fake.Press("5"))
	d.Send(fake.Press("d"))
	if v := app.View(); !strings.Contains(v, "read-only: deregistering a collector needs the operator or admin role") {
		t.Errorf("d for a viewer:\n%s", v)
	}
	if strings.Contains(app.View(), "deregister") && strings.Contains(app.helpView(), "d deregister") {
		t.Error("help offers deregister to a viewer")
	}
	d.Send(fake.Press("3"))
	d.Send(fake.Press("enter"))
	if app.busy() {
		t.Error("a viewer started a runbook step")
	}
	if len(f.DeletedIDs()) != 0 {
		t.Error("a viewer deregistered a collector")
	}
}

func TestSmallTerminal(t *testing.T) {
	app, _ := newConsole(t, api.RoleAdmin)
	app.Update(tea.WindowSizeMsg{Width: 50, Height: 10})
	v := app.View()
	if !strings.Contains(v, "Terminal too small") || strings.Count(v, "\n") != 9 {
		t.Errorf("small terminal:\n%s", v)
	}
}

// TestEveryFrameFitsTheTerminal checks that no view draws past the terminal at the sizes the
// console supports, whatever it shows.
func TestEveryFrameFitsTheTerminal(t *testing.T) {
	app, _ := newConsole(t, api.RoleAdmin)
	d := drive(t, app)
	for _, sz := range []struct{ w, h int }{{80, 24}, {100, 30}, {160, 48}, {80, 24}} {
		d.Send(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
		for _, k := range []string{"1", "2", "3", "4", "5", "6", "7", "?", "1", "?"} {
			d.Send(fake.Press(k))
			lines := strings.Split(app.View(), "\n")
			if len(lines) != sz.h {
				t.Errorf("%dx%d view %d: %d lines", sz.w, sz.h, app.active+1, len(lines))
			}
			for i, l := range lines {
				if w := widthOf(l); w != sz.w {
					t.Errorf("%dx%d view %d line %d: %d columns: %q", sz.w, sz.h, app.active+1, i, w, l)
				}
			}
		}
	}
}

func widthOf(s string) int { return widget.Width(s) }
