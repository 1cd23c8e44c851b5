// Package smoke is the console's smoke view: it runs the smoke suite and shows each check with a
// spinner while it runs, then its verdict, duration and one-line reason.
package smoke

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/smoke"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Suite is the smoke suite as the view drives it.
type Suite interface {
	Selected() []string
	Stream(ctx context.Context, fn func(smoke.Result)) (smoke.Summary, error)
}

// Options configure the view.
type Options struct {
	view.Env
	Suite       Suite // nil when the suite cannot be built; Unavailable says why
	Unavailable string
}

type checkState int

const (
	checkPending checkState = iota
	checkRunning
	checkDone
)

type check struct {
	name   string
	state  checkState
	result smoke.Result
}

// event is one result of a run, or its summary (the last event before the pump ends).
type event struct {
	result  *smoke.Result
	summary *smoke.Summary
}

// Model is the smoke view.
type Model struct {
	opts  Options
	keys  keys.Map
	plain theme.Theme

	width, height int

	checks   []check
	pump     *widget.Pump[event]
	cancel   context.CancelFunc
	spinner  spinner.Model
	summary  *smoke.Summary
	err      error
	started  time.Time
	finished time.Time
	cursor   widget.Cursor
}

// New builds the view with every selected check pending.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	m := &Model{
		opts: o, keys: o.Keys, plain: o.Theme.Plain(),
		spinner: spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(o.Theme.Accent)),
		width:   80, height: 20,
	}
	if o.Suite != nil {
		for _, n := range o.Suite.Selected() {
			m.checks = append(m.checks, check{name: n})
		}
	}
	return m
}

// Init does nothing: the suite runs when asked (it logs in, registers and spends the rate limit).
func (m *Model) Init() tea.Cmd { return nil }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Running reports whether the suite is running.
func (m *Model) Running() bool { return m.pump != nil }

// Update handles the run's events, the spinner and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case widget.Event[event]:
		return m, m.onEvent(msg)
	case spinner.TickMsg:
		if m.Running() {
			var cmd tea.Cmd
			m.spinner, cmd = m.spinner.Update(msg)
			return m, cmd
		}
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	}
	return m, nil
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Up):
		m.cursor.Move(-1, len(m.checks))
	case key.Matches(k, m.keys.Down):
		m.cursor.Move(1, len(m.checks))
	case key.Matches(k, m.keys.Top):
		m.cursor.Move(-len(m.checks), len(m.checks))
	case key.Matches(k, m.keys.Bottom):
		m.cursor.Move(len(m.checks), len(m.checks))
	case key.Matches(k, m.keys.RunSuite):
		if !m.Running() && m.opts.Suite != nil {
			return m.start()
		}
	case key.Matches(k, m.keys.Back):
		if m.cancel != nil {
			m.cancel()
		}
	}
	return nil
}

// start runs the suite; its results and summary arrive through a pump.
func (m *Model) start() tea.Cmd {
	for i := range m.checks {
		m.checks[i] = check{name: m.checks[i].name}
	}
	m.summary, m.err = nil, nil
	m.started, m.finished = m.opts.Now(), time.Time{}
	ctx, cancel := context.WithCancel(m.opts.Context)
	m.cancel = cancel
	suite := m.opts.Suite
	p, cmd := widget.StartPump(m.opts.Context, func(emit func(event)) error {
		sum, err := suite.Stream(ctx, func(r smoke.Result) { emit(event{result: &r}) })
		emit(event{summary: &sum})
		return err
	})
	m.pump = p
	m.markRunning()
	return tea.Batch(cmd, m.spinner.Tick)
}

func (m *Model) onEvent(ev widget.Event[event]) tea.Cmd {
	if ev.Pump != m.pump {
		return nil
	}
	switch {
	case ev.Done:
		m.finish(ev.Err)
		return nil
	case ev.Value.summary != nil:
		m.summary = ev.Value.summary
	case ev.Value.result != nil:
		for i := range m.checks {
			if m.checks[i].name == ev.Value.result.Name {
				m.checks[i].state, m.checks[i].result = checkDone, *ev.Value.result
			}
		}
		m.markRunning()
	}
	return ev.Pump.Next()
}

// markRunning flags the first check without a result: the suite runs them in order.
func (m *Model) markRunning() {
	for i := range m.checks {
		if m.checks[i].state != checkDone {
			m.checks[i].state = checkRunning
			return
		}
	}
}

func (m *Model) finish(err error) {
	m.pump = nil
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	for i := range m.checks {
		if m.checks[i].state == checkRunning {
			m.checks[i].state = checkPending
		}
	}
	m.err = err
	m.finished = m.opts.Now()
}

// View renders the status line, the checks and the selected check's description and reason.
func (m *Model) View() string {
	th := m.opts.Theme
	lines := []string{m.statusLine()}
	if m.opts.Suite == nil {
		lines = append(lines, "")
		for _, l := range widget.Wrap("The smoke suite is not available: "+m.opts.Unavailable, m.width, 4) {
			lines = append(lines, th.Level(theme.LevelCrit).Render(l))
		}
		return widget.Lines(lines, m.width, m.height)
	}
	if m.err != nil && !errors.Is(m.err, context.Canceled) {
		for _, l := range widget.Wrap("The suite could not run: "+m.err.Error(), m.width, 3) {
			lines = append(lines, th.Level(theme.LevelCrit).Render(l))
		}
	}
	lines = append(lines, strings.Repeat(" ", 2+theme.MarkerWidth+1)+th.ColumnHeader.Render(
		widget.Fit("CHECK", nameW)+" "+widget.FitLeft("TIME", durW)+" "+"REASON"))
	footer := m.footer()
	start, end := m.cursor.Visible(max(1, m.height-len(lines)-len(footer)), len(m.checks))
	for i := start; i < end; i++ {
		lines = append(lines, m.rowLine(m.checks[i], i == m.cursor.Index))
	}
	for len(lines) < m.height-len(footer) {
		lines = append(lines, "")
	}
	return widget.Lines(append(lines, footer...), m.width, m.height)
}

const (
	nameW = 20
	durW  = 7
)

func (m *Model) statusLine() string {
	th := m.opts.Theme
	sep := th.Muted.Render(" · ")
	parts := []string{fmt.Sprintf("%d checks", len(m.checks))}
	switch {
	case m.Running():
		done := 0
		for _, c := range m.checks {
			if c.state == checkDone {
				done++
			}
		}
		parts = append(parts, th.Accent.Render(fmt.Sprintf("running %d/%d", done+1, len(m.checks))),
			th.Muted.Render("started "+widget.Clock(m.started)+", esc cancels"))
	case m.summary != nil:
		s := m.summary
		parts = append(parts, th.Level(theme.LevelOK).Render(fmt.Sprintf("%d passed", s.Passed)))
		failed := th.Muted.Render("0 failed")
		if s.Failed > 0 {
			failed = th.Level(theme.LevelCrit).Render(fmt.Sprintf("%d FAILED", s.Failed))
		}
		parts = append(parts, failed, fmt.Sprintf("%d skipped", s.Skipped),
			th.Muted.Render(fmt.Sprintf("in %s, finished %s", s.Duration.Round(time.Millisecond), widget.Clock(m.finished))))
	default:
		parts = append(parts, th.Muted.Render("not run yet: press enter or r to run the suite"))
	}
	return strings.Join(parts, sep)
}

func (m *Model) rowLine(c check, selected bool) string {
	th := m.opts.Theme
	if selected {
		th = m.plain
	}
	var marker, dur, reason string
	switch c.state {
	case checkPending:
		marker = th.Muted.Render(widget.Fit("  ·", theme.MarkerWidth))
	case checkRunning:
		marker = widget.Fit(" "+m.spinner.View(), theme.MarkerWidth)
		reason = th.Muted.Render("running…")
	case checkDone:
		r := c.result
		switch r.Status {
		case smoke.StatusPass:
			marker = th.MarkerText(theme.LevelOK, "PASS")
		case smoke.StatusFail:
			marker = th.MarkerText(theme.LevelCrit, "FAIL")
		default:
			marker = th.MarkerText(theme.LevelNone, "SKIP")
		}
		dur = widget.Duration(r.Duration)
		reason = r.Message
		if r.Status == smoke.StatusFail {
			reason = th.Level(theme.LevelCrit).Render(reason)
		}
	}
	line := widget.Fit(widget.Gutter(selected)+marker+" "+widget.Fit(th.Bold.Render(c.name), nameW)+" "+widget.FitLeft(dur, durW)+" "+reason, m.width)
	if selected {
		line = m.opts.Theme.Selected.Render(line)
	}
	return line
}

// footer describes the selected check and shows its whole reason.
func (m *Model) footer() []string {
	if len(m.checks) == 0 {
		return nil
	}
	th := m.opts.Theme
	c := m.checks[widget.Clamp(m.cursor.Index, len(m.checks))]
	out := []string{th.Rule.Render(strings.Repeat("─", m.width)), th.Bold.Render(c.name) + th.Muted.Render(": "+smoke.Describe(c.name))}
	if c.state == checkDone && c.result.Message != "" {
		out = append(out, widget.Wrap(c.result.Message, m.width, 2)...)
	}
	return out
}

// ShortHelp lists the view's main keys.
func (m *Model) ShortHelp() []key.Binding {
	if m.Running() {
		return []key.Binding{m.keys.Up, m.keys.Down, withHelp(m.keys.Back, "cancel run")}
	}
	return []key.Binding{m.keys.RunSuite, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.RunSuite, withHelp(m.keys.Back, "cancel run")},
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom},
	}
}

func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}
