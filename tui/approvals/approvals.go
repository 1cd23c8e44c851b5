// Package approvals is the console's list of runbook steps waiting for approval, from GET
// /api/v1/runbook/approvals: which run, which step, whose approval is missing, who executes it.
// An operator approves (a) or rejects (x) the selected step with a comment; the API decides
// whether the user may (team role, two-person rule) and audits it.
package approvals

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Source is what the view needs from the API.
type Source interface {
	PendingApprovals(ctx context.Context) ([]api.PendingApproval, error)
	DecideApproval(ctx context.Context, runID string, req api.ApprovalRequest) (api.Approval, error)
}

// Options configure the view.
type Options struct {
	view.Env
	Source   Source
	Interval time.Duration // poll interval (default 5s: someone is waiting)
}

type decidedMsg struct {
	ref string
	res api.Approval
	err error
}

// Model is the approvals view.
type Model struct {
	opts  Options
	keys  keys.Map
	plain theme.Theme

	width, height int

	poll    *view.Poller[[]api.PendingApproval]
	pending []api.PendingApproval
	loaded  bool
	cursor  widget.Cursor

	canWrite bool
	asking   *api.PendingApproval // the step being decided, while the comment prompt is open
	decision string
	prompt   widget.Input
	notice   string
}

// New builds the view.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	m := &Model{
		opts: o, keys: o.Keys, plain: o.Theme.Plain(),
		poll:   view.NewPoller(o.Context, conn.SourceApprovals, o.Source.PendingApprovals),
		prompt: widget.Input{Limit: 500},
		width:  80, height: 20,
	}
	m.SetRole(api.RoleViewer)
	return m
}

// SetRole enables deciding for operators and admins.
func (m *Model) SetRole(role string) {
	m.canWrite = role == api.RoleAdmin || role == api.RoleOperator
	m.keys.Approve.SetEnabled(m.canWrite)
	m.keys.Reject.SetEnabled(m.canWrite)
}

// Init fetches the list.
func (m *Model) Init() tea.Cmd { return m.poll.Fetch() }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Capturing reports that keys go to the comment prompt.
func (m *Model) Capturing() bool { return m.asking != nil }

// Badge is the number of steps waiting, for the tab title ("" when none).
func (m *Model) Badge() string {
	if len(m.pending) == 0 {
		return ""
	}
	return strconv.Itoa(len(m.pending))
}

// Update handles data and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if cmd, ok := m.poll.Update(msg, m.opts.Interval, m.show); ok {
		return m, cmd
	}
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	case decidedMsg:
		if msg.err != nil {
			m.notice = msg.ref + ": " + msg.err.Error()
			return m, nil
		}
		m.notice = fmt.Sprintf("%s %s as %s", msg.ref, msg.res.Decision, msg.res.User)
		return m, m.poll.Restart()
	}
	return m, nil
}

func (m *Model) show(p []api.PendingApproval) {
	m.pending, m.loaded = p, true
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.asking != nil {
		return m.answer(k)
	}
	if m.cursor.Navigate(k, m.keys, len(m.pending), max(1, m.height-3)) {
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Refresh):
		return m.poll.Restart()
	case k.String() == m.keys.Approve.Keys()[0]:
		m.ask(api.ApprovalApproved)
	case k.String() == m.keys.Reject.Keys()[0]:
		m.ask(api.ApprovalRejected)
	}
	return nil
}

// ask opens the comment prompt for the selected step, or says why it cannot.
func (m *Model) ask(decision string) {
	switch {
	case !m.canWrite:
		m.notice = "read-only: approving needs the operator or admin role (and the step's team role)"
	case len(m.pending) == 0:
		m.notice = "no step waits for approval"
	default:
		p := m.pending[widget.Clamp(m.cursor.Index, len(m.pending))]
		m.asking, m.decision, m.notice = &p, decision, ""
		m.prompt.Reset()
	}
}

// answer takes the prompt's keys: enter sends the decision with the comment, esc cancels. A
// rejection needs a comment (the executor must learn why).
func (m *Model) answer(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Cancel):
		m.asking, m.notice = nil, "cancelled"
		return nil
	case !key.Matches(k, m.keys.Submit):
		m.prompt.Update(k)
		return nil
	}
	comment := strings.TrimSpace(m.prompt.Value())
	if m.decision == api.ApprovalRejected && comment == "" {
		m.notice = "say why the step is rejected"
		return nil
	}
	p := *m.asking
	m.asking = nil
	ref := p.Phase + "/" + p.Step
	m.notice = m.decision + " " + ref + "…"
	ctx, src := m.opts.Context, m.opts.Source
	req := api.ApprovalRequest{Phase: p.Phase, Step: p.Step, Decision: m.decision, Comment: comment}
	return func() tea.Msg {
		res, err := src.DecideApproval(ctx, p.RunID, req)
		return decidedMsg{ref: ref, res: res, err: err}
	}
}

const (
	stepW  = 28
	needW  = 26
	execW  = 14
	sinceW = 8
)

// View renders the status line and the list.
func (m *Model) View() string {
	th := m.opts.Theme
	now := m.opts.Now()
	status := fmt.Sprintf("%d steps waiting for approval", len(m.pending))
	if m.loaded && len(m.pending) == 0 {
		status = th.Level(theme.LevelOK).Render("no step waits for approval")
	}
	lines := []string{status}
	if m.asking != nil {
		verb := "Approve"
		if m.decision == api.ApprovalRejected {
			verb = "Reject"
		}
		lines = append(lines, th.Accent.Render(fmt.Sprintf("%s %s/%s of run %s — comment: ", verb, m.asking.Phase, m.asking.Step, m.asking.RunID))+
			m.prompt.View()+th.Muted.Render("  enter sends · esc cancels"))
	}
	if m.notice != "" {
		lines = append(lines, th.Muted.Render(m.notice))
	}
	switch {
	case len(m.pending) == 0 && !m.loaded && m.poll.Err() != nil:
		lines = append(lines, th.Level(theme.LevelCrit).Render("Cannot load approvals: "+m.poll.Err().Error()))
	case len(m.pending) == 0 && !m.loaded:
		lines = append(lines, th.Muted.Render("Loading approvals…"))
	case len(m.pending) == 0:
		lines = append(lines, th.Muted.Render("Steps with approve = [...] and destructive steps of shared runs appear here while they wait."))
	default:
		cols := []string{widget.Fit("STEP", stepW), widget.Fit("NEEDS", needW), widget.Fit("EXECUTOR", execW), widget.Fit("WAITING", sinceW), "RUN"}
		lines = append(lines, "  "+th.ColumnHeader.Render(strings.Join(cols, " ")))
		start, end := m.cursor.Visible(max(1, m.height-len(lines)), len(m.pending))
		for i := start; i < end; i++ {
			lines = append(lines, m.rowLine(m.pending[i], i == m.cursor.Index, now))
		}
	}
	return widget.Lines(lines, m.width, m.height)
}

func (m *Model) rowLine(p api.PendingApproval, selected bool, now time.Time) string {
	th := m.opts.Theme
	if selected {
		th = m.plain
	}
	need := strings.Join(p.Missing, ", ")
	if need == "" {
		need = "another operator"
	}
	if p.Destructive {
		need += " (2 people)"
	}
	cols := []string{
		widget.Fit(th.Bold.Render(p.Phase+"/"+p.Step), stepW),
		th.Level(theme.LevelWarn).Render(widget.Fit(need, needW)),
		widget.Fit(p.Executor, execW),
		widget.Fit(widget.Age(p.Since, now), sinceW),
		th.Muted.Render(p.RunID + " · " + p.Env),
	}
	line := widget.Fit(widget.Gutter(selected)+strings.Join(cols, " "), m.width)
	if selected {
		line = m.opts.Theme.Selected.Render(line)
	}
	return line
}

// ShortHelp lists the keys of the current mode.
func (m *Model) ShortHelp() []key.Binding {
	if m.asking != nil {
		return []key.Binding{m.keys.Submit, m.keys.Cancel}
	}
	return []key.Binding{m.keys.Approve, m.keys.Reject, m.keys.Refresh, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom},
		{m.keys.Approve, m.keys.Reject, m.keys.Refresh},
	}
}
