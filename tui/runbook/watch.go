package runbook

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// The Phase 4 watch from the console: the plan's "every 15 minutes for the first 6 hours".
const (
	DefaultWatchEvery = 15 * time.Minute
	DefaultWatchFor   = 6 * time.Hour
)

// Watcher runs the Phase 4 watch (runbook.Engine.Watch); an EngineRunner is one.
type Watcher interface {
	// Watch starts a watch of phase, or continues the watch resumeID when set, until its end or ctx's.
	Watch(ctx context.Context, phase, resumeID string, onRound func(*runbook.WatchState, runbook.WatchRound)) (*runbook.WatchState, error)
	// UnfinishedWatch is the newest watch that stopped before its end (the console quit), or nil.
	UnfinishedWatch() (*runbook.WatchState, error)
}

// watchEvent is one recorded round.
type watchEvent struct {
	state *runbook.WatchState
	round runbook.WatchRound
}

// activeWatch is the watch this console runs in the background, beside any interactive run.
type activeWatch struct {
	phase  string
	pump   *widget.Pump[watchEvent]
	cancel context.CancelFunc
	state  *runbook.WatchState
	last   *runbook.WatchRound
}

// unfinishedWatchMsg carries the watch a previous console left unfinished.
type unfinishedWatchMsg struct{ w *runbook.WatchState }

func (m *Model) watcher() (Watcher, bool) {
	w, ok := m.opts.Runner.(Watcher)
	return w, ok
}

// findUnfinishedWatch looks for a watch to continue: a watch keeps going across console restarts.
func (m *Model) findUnfinishedWatch() tea.Cmd {
	w, ok := m.watcher()
	if !ok {
		return nil
	}
	return func() tea.Msg {
		st, err := w.UnfinishedWatch()
		if err != nil || st == nil {
			return nil
		}
		return unfinishedWatchMsg{w: st}
	}
}

// startWatch watches phase (or resumes the watch resumeID) in the background.
func (m *Model) startWatch(phase, resumeID string) tea.Cmd {
	w, ok := m.watcher()
	switch {
	case !ok:
		m.notice = "This runner cannot watch."
		return nil
	case !m.canRun:
		m.notice = "Read-only: the watch runs the phase's checks, which needs the operator or admin role."
		return nil
	case m.watch != nil:
		m.notice = "A watch of " + m.watch.phase + " is running (one at a time)."
		return nil
	}
	ctx, cancel := context.WithCancel(m.opts.Context)
	aw := &activeWatch{phase: phase, cancel: cancel}
	p, cmd := widget.StartPump(m.opts.Context, func(emit func(watchEvent)) error {
		_, err := w.Watch(ctx, phase, resumeID, func(st *runbook.WatchState, r runbook.WatchRound) {
			cp := *st
			emit(watchEvent{state: &cp, round: r})
		})
		return err
	})
	aw.pump = p
	m.watch = aw
	if resumeID != "" {
		m.notice = "Continuing watch " + resumeID + " of " + phase + "…"
	} else {
		m.notice = fmt.Sprintf("Watching %s every %s for %s…", phase, DefaultWatchEvery, DefaultWatchFor)
	}
	return cmd
}

func (m *Model) onWatchEvent(msg widget.Event[watchEvent]) tea.Cmd {
	aw := m.watch
	if aw == nil || msg.Pump != aw.pump {
		return nil
	}
	if msg.Done {
		m.watch = nil
		switch {
		case m.opts.Context.Err() != nil:
		case msg.Err != nil:
			m.notice = "Watch of " + aw.phase + " ended: " + runbook.FirstLine(msg.Err.Error())
		default:
			m.notice = "Watch of " + aw.phase + " succeeded: every round passed, nothing flagged."
		}
		return nil
	}
	aw.state, aw.last = msg.Value.state, &msg.Value.round
	return msg.Pump.Next()
}

// watchLine is the status line of the running watch: its last round, when the next is due, what it
// flagged.
func (m *Model) watchLine() string {
	aw := m.watch
	if aw == nil {
		return ""
	}
	th := m.opts.Theme
	if aw.state == nil || aw.last == nil {
		return th.Accent.Render("◷ watching " + aw.phase + ": first round running")
	}
	st, r := aw.state, aw.last
	parts := []string{fmt.Sprintf("◷ watching %s every %s until %s", aw.phase, st.Every.D(), widget.Clock(st.EndsAt)),
		fmt.Sprintf("round %d %s %s", r.N, r.Status, widget.Clock(r.At))}
	if next := r.At.Add(st.Every.D()); next.Before(st.EndsAt) {
		parts = append(parts, "next "+widget.Clock(next))
	}
	line := th.Accent.Render(strings.Join(parts, " · "))
	if len(st.Findings) > 0 {
		line += th.Muted.Render(" · ") + th.Level(theme.LevelWarn).Render("flagged: "+strings.Join(st.Findings, "; "))
	}
	return line
}
