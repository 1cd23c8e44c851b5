// Package runbook is the console's runbook view: the phases of the deployment runbook (or of its
// rollback) as a checklist whose steps run through the runbook engine, with their output streaming
// in a pane, confirmations asked in place, and the last run's progress shown where it stopped.
package runbook

import (
	"context"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Runner runs the runbook. The console adapts runbook.Engine to it (one engine per run).
type Runner interface {
	Runbook() *runbook.Runbook
	Env() string // the environment's name
	Run(ctx context.Context, t runbook.Target, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error)
	Resume(ctx context.Context, runID string, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error)
	// History lists the runs of a phase (whole or single-step), newest first.
	History(ctx context.Context, phase string) ([]*runbook.RunState, error)
}

// Options configure the view.
type Options struct {
	view.Env
	Runner      Runner // nil when no runbook could be loaded; Unavailable says why
	Unavailable string
	Title       string               // "Runbook" or "Rollback"
	Phases      func(id string) bool // which phases this view shows
}

// outputLines bounds the output kept per step.
const outputLines = 2000

// stepState is what the view knows of one step: from this session's runs, or from the state a past
// run persisted.
type stepState struct {
	phase    string
	step     *runbook.Step
	status   runbook.Status
	attempts int
	started  time.Time
	duration time.Duration
	err      string
	output   *widget.Ring[string]
	live     bool // set by a run of this session (else loaded from a past run)
}

func (s *stepState) ref() string { return s.phase + "/" + s.step.ID }

// row is a phase heading (step nil) or a step.
type row struct {
	phase *runbook.Phase
	step  *stepState
}

// Model is the runbook view.
type Model struct {
	opts  Options
	keys  keys.Map
	plain theme.Theme

	width, height int

	rows    []row
	steps   map[string]*stepState // by phase/step
	lastRun map[string]*runbook.RunState
	loadErr error
	canRun  bool

	cursor widget.Cursor // over rows; headings are skipped

	run          *activeRun
	watch        *activeWatch
	remote       *followedRun        // a shared run executed elsewhere, followed live
	followRun    *runbook.RunState   // found in the history, to follow once the history is applied
	resumeWatch  *runbook.WatchState // a watch a previous console left unfinished, continued once allowed
	notice       string
	outputScroll int // lines up from the bottom of the output pane
}

// New builds the view from the runner's runbook; the past runs load in Init's command.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Phases == nil {
		o.Phases = func(string) bool { return true }
	}
	m := &Model{
		opts: o, keys: o.Keys, plain: o.Theme.Plain(),
		steps: map[string]*stepState{}, lastRun: map[string]*runbook.RunState{},
		width: 80, height: 20,
	}
	if o.Runner != nil {
		rb := o.Runner.Runbook()
		for pi := range rb.Phases {
			p := &rb.Phases[pi]
			if !o.Phases(p.ID) {
				continue
			}
			m.rows = append(m.rows, row{phase: p})
			for si := range p.Steps {
				st := &stepState{phase: p.ID, step: &p.Steps[si], status: runbook.StatusPending, output: widget.NewRing[string](outputLines)}
				m.steps[st.ref()] = st
				m.rows = append(m.rows, row{phase: p, step: st})
			}
		}
	}
	m.cursor.Index = m.nextStep(0, 1)
	m.SetRole(api.RoleViewer)
	return m
}

// SetRole lets operators and admins run steps; viewers only look.
func (m *Model) SetRole(role string) {
	m.canRun = role == api.RoleAdmin || role == api.RoleOperator
	for _, b := range []*key.Binding{&m.keys.RunStep, &m.keys.RunPhase, &m.keys.Resume, &m.keys.Watch} {
		b.SetEnabled(m.canRun)
	}
}

// continueWatch resumes the watch a previous console left, once the role allows running.
func (m *Model) continueWatch() tea.Cmd {
	w := m.resumeWatch
	if w == nil || !m.canRun || m.watch != nil {
		return nil
	}
	m.resumeWatch = nil
	return m.startWatch(w.Phase, w.ID)
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Busy reports a run in progress: the shell refuses to quit until it ends.
func (m *Model) Busy() bool { return m.run != nil }

// Capturing reports that keys are typed into the destructive step's confirmation. The other prompts
// take single keys (y, s, a) and leave the shell's shortcuts working.
func (m *Model) Capturing() bool {
	return m.run != nil && m.run.prompt != nil && m.run.prompt.Kind == runbook.PromptDestructive
}

// historyMsg carries the past runs of the view's phases.
type historyMsg struct {
	runs map[string][]*runbook.RunState
	err  error
}

// Init loads the past runs, so a run stopped earlier shows where it stopped.
func (m *Model) Init() tea.Cmd {
	if m.opts.Runner == nil {
		return nil
	}
	r := m.opts.Runner
	var phases []string
	for _, rw := range m.rows {
		if rw.step == nil {
			phases = append(phases, rw.phase.ID)
		}
	}
	return tea.Batch(m.findUnfinishedWatch(), func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out := map[string][]*runbook.RunState{}
		for _, p := range phases {
			runs, err := r.History(ctx, p)
			if err != nil {
				return historyMsg{err: err}
			}
			out[p] = runs
		}
		return historyMsg{runs: out}
	})
}

// applyHistory shows each step as the newest run that included it left it, and remembers the newest
// run of each phase that can be resumed.
func (m *Model) applyHistory(runs map[string][]*runbook.RunState) {
	for phase, list := range runs {
		for i := len(list) - 1; i >= 0; i-- { // oldest first, so newer runs overwrite
			for _, ss := range list[i].Steps {
				st := m.steps[ss.Phase+"/"+ss.Step]
				if st == nil || st.live || ss.Status == runbook.StatusPending {
					continue
				}
				st.status, st.attempts, st.started, st.err = ss.Status, ss.Attempts, ss.StartedAt, ss.Error
				st.duration = 0
				if !ss.EndedAt.IsZero() && !ss.StartedAt.IsZero() {
					st.duration = ss.EndedAt.Sub(ss.StartedAt)
				}
			}
		}
		// Only whole-phase runs are offered for resuming: a single step is simply run again. A run
		// someone executes right now is followed instead.
		for _, r := range list {
			if r.Lease != nil && r.Status == runbook.StatusRunning {
				if m.remote == nil && (m.run == nil || m.run.id != r.ID) {
					m.followRun = r
				}
				continue
			}
			if r.Target == phase {
				if r.Resumable() {
					m.lastRun[phase] = r
				}
				break
			}
		}
	}
}

// Update handles the run's events, the history and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case historyMsg:
		if msg.err != nil {
			m.loadErr = msg.err
		} else {
			m.applyHistory(msg.runs)
			return m, m.startFollow()
		}
	case widget.Event[*runbook.RunState]:
		return m, m.onFollowEvent(msg)
	case widget.Event[runEvent]:
		return m, m.onRunEvent(msg)
	case widget.Event[watchEvent]:
		return m, m.onWatchEvent(msg)
	case unfinishedWatchMsg:
		if m.opts.Phases(msg.w.Phase) {
			m.resumeWatch = msg.w
			return m, m.continueWatch()
		}
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	}
	return m, nil
}

func (m *Model) selected() *stepState {
	if len(m.rows) == 0 {
		return nil
	}
	return m.rows[widget.Clamp(m.cursor.Index, len(m.rows))].step
}

// nextStep is the first step row from i in direction dir (±1), or i when there is none.
func (m *Model) nextStep(i, dir int) int {
	for j := i; j >= 0 && j < len(m.rows); j += dir {
		if m.rows[j].step != nil {
			return j
		}
	}
	return i
}

func (m *Model) move(delta int) {
	if len(m.rows) == 0 {
		return
	}
	dir := 1
	if delta < 0 {
		dir = -1
	}
	target := widget.Clamp(m.cursor.Index+delta, len(m.rows))
	j := m.nextStep(target, dir)
	if m.rows[j].step == nil {
		j = m.nextStep(target, -dir)
	}
	if m.rows[j].step != nil {
		m.cursor.Index = j
		m.outputScroll = 0
	}
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.run != nil && m.run.prompt != nil {
		return m.answer(k)
	}
	switch {
	case key.Matches(k, m.keys.Up):
		m.move(-1)
	case key.Matches(k, m.keys.Down):
		m.move(1)
	case key.Matches(k, m.keys.Top):
		m.move(-len(m.rows))
	case key.Matches(k, m.keys.Bottom):
		m.move(len(m.rows))
	case key.Matches(k, m.keys.PageUp):
		m.outputScroll += max(1, m.paneHeight()-1)
	case key.Matches(k, m.keys.PageDown):
		m.outputScroll = max(0, m.outputScroll-max(1, m.paneHeight()-1))
	case k.String() == m.keys.RunStep.Keys()[0]:
		if st := m.selected(); st != nil {
			return m.start(runbook.Target{Phase: st.phase, Step: st.step.ID}, "")
		}
	case k.String() == m.keys.RunPhase.Keys()[0]:
		if st := m.selected(); st != nil {
			return m.start(runbook.Target{Phase: st.phase}, "")
		}
	case k.String() == m.keys.Resume.Keys()[0]:
		st := m.selected()
		if st == nil {
			return nil
		}
		last := m.lastRun[st.phase]
		if last == nil {
			m.notice = "Nothing to resume in phase " + st.phase + ": its last run succeeded or it never ran."
			return nil
		}
		return m.start(runbook.Target{Phase: st.phase}, last.ID)
	case k.String() == m.keys.Watch.Keys()[0]:
		if st := m.selected(); st != nil {
			return m.startWatch(st.phase, "")
		}
	}
	return nil
}

// ShortHelp lists the keys of the current mode.
func (m *Model) ShortHelp() []key.Binding {
	if m.run != nil && m.run.prompt != nil {
		return m.promptKeys()
	}
	return []key.Binding{m.keys.RunStep, m.keys.RunPhase, m.keys.Resume, m.keys.Watch, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, withHelp(m.keys.PageUp, "output up"), withHelp(m.keys.PageDown, "output down")},
		{m.keys.RunStep, m.keys.RunPhase, m.keys.Resume, m.keys.Watch},
		{withHelp(m.keys.Confirm, "done / retry"), m.keys.SkipStep, m.keys.Abort},
	}
}

func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}
