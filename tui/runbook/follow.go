package runbook

import (
	"context"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Following streams a run someone else executes: a Runner whose runs are shared, and the shared
// RunStore behind it (runbook/shared.Store).
type Following interface {
	Follow(ctx context.Context, runID string, fn func(*runbook.RunState) bool) error
}

// followedRun is a shared run executed by another pgactl or console, shown live.
type followedRun struct {
	id     string
	pump   *widget.Pump[*runbook.RunState]
	cancel context.CancelFunc
	state  *runbook.RunState
}

// startFollow follows the run the history found in progress elsewhere, if any.
func (m *Model) startFollow() tea.Cmd {
	r := m.followRun
	m.followRun = nil
	f, ok := m.opts.Runner.(Following)
	if r == nil || !ok || m.remote != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(m.opts.Context)
	fr := &followedRun{id: r.ID, cancel: cancel, state: r}
	p, cmd := widget.StartPump(m.opts.Context, func(emit func(*runbook.RunState)) error {
		return f.Follow(ctx, r.ID, func(st *runbook.RunState) bool {
			emit(st)
			return st.Status == runbook.StatusRunning
		})
	})
	fr.pump = p
	m.remote = fr
	m.showRemote(r)
	return cmd
}

func (m *Model) onFollowEvent(msg widget.Event[*runbook.RunState]) tea.Cmd {
	fr := m.remote
	if fr == nil || msg.Pump != fr.pump {
		return nil
	}
	if msg.Done {
		m.remote = nil
		if fr.state != nil && fr.state.Status != runbook.StatusRunning {
			m.notice = fmt.Sprintf("Run %s of %s %s (executed by %s).", fr.id, fr.state.Target, fr.state.Status, fr.state.Operator)
			if fr.state.Resumable() && fr.state.Target == m.phaseOf(fr.state) {
				m.lastRun[fr.state.Target] = fr.state
			}
		}
		return nil
	}
	fr.state = msg.Value
	m.showRemote(msg.Value)
	return msg.Pump.Next()
}

func (m *Model) phaseOf(st *runbook.RunState) string {
	if len(st.Steps) == 0 {
		return ""
	}
	return st.Steps[0].Phase
}

// showRemote shows the followed run's steps as it left them, unless this console runs them itself.
func (m *Model) showRemote(st *runbook.RunState) {
	for _, ss := range st.Steps {
		row := m.steps[ss.Phase+"/"+ss.Step]
		if row == nil || (m.run != nil && row.live) {
			continue
		}
		row.status, row.attempts, row.started, row.err = ss.Status, ss.Attempts, ss.StartedAt, ss.Error
		row.duration = 0
		if !ss.EndedAt.IsZero() && !ss.StartedAt.IsZero() {
			row.duration = ss.EndedAt.Sub(ss.StartedAt)
		}
	}
}

// remoteLine is the status line of a followed run: who executes it, where it is.
func (m *Model) remoteLine() string {
	fr := m.remote
	if fr == nil || fr.state == nil {
		return ""
	}
	st := fr.state
	at := ""
	for _, ss := range st.Steps {
		if ss.Status == runbook.StatusRunning || ss.Status == runbook.StatusAwaitingApproval {
			at = " · " + ss.Phase + "/" + ss.Step + " " + string(ss.Status)
			break
		}
	}
	who := st.Operator
	if st.Lease != nil {
		who = st.Lease.Holder
	}
	return m.opts.Theme.Accent.Render(fmt.Sprintf("◉ following run %s of %s, executed by %s%s", st.ID, st.Target, who, at))
}
