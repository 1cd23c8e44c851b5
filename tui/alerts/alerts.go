// Package alerts is the console's alert list from GET /api/v1/alerts: the alerts of the API's
// rules, firing, pending and recently resolved, and since when.
package alerts

import (
	"context"
	"fmt"
	"sort"
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
	Alerts(ctx context.Context) (api.AlertsResponse, error)
	CreateSilence(ctx context.Context, req api.SilenceRequest) (api.SilenceResponse, error)
}

// silenceFor is how long `s` silences an alert unless the answer starts with another duration.
const silenceFor = 2 * time.Hour

type silencedMsg struct {
	alert string
	res   api.SilenceResponse
	err   error
}

// Options configure the view.
type Options struct {
	view.Env
	Source   Source
	Interval time.Duration // poll interval (default 15s)
}

// Model is the alerts view.
type Model struct {
	opts  Options
	keys  keys.Map
	plain theme.Theme

	width, height int

	poll   *view.Poller[api.AlertsResponse]
	resp   api.AlertsResponse
	loaded bool

	filter widget.Filter
	cursor widget.Cursor
	detail bool

	canWrite bool
	asking   *api.Alert   // the alert being silenced, while the prompt is open
	prompt   widget.Input // "[duration] why"
	notice   string
}

// New builds the view.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	m := &Model{
		opts: o, keys: o.Keys, plain: o.Theme.Plain(),
		poll:   view.NewPoller(o.Context, conn.SourceAlerts, o.Source.Alerts),
		filter: widget.NewFilter(o.Theme, o.Keys),
		prompt: widget.Input{Prompt: "", Limit: 200},
		width:  80, height: 20,
	}
	m.SetRole(api.RoleViewer)
	return m
}

// SetRole enables silencing for operators and admins.
func (m *Model) SetRole(role string) {
	m.canWrite = role == api.RoleAdmin || role == api.RoleOperator
	m.keys.Silence.SetEnabled(m.canWrite)
}

// Init fetches the alerts.
func (m *Model) Init() tea.Cmd { return m.poll.Fetch() }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Capturing reports that keys go to the filter input.
func (m *Model) Capturing() bool { return m.filter.Typing() || m.asking != nil }

// Badge is the number of firing warning and critical alerts, for the tab title ("" when none).
func (m *Model) Badge() string {
	n := 0
	for _, a := range m.resp.Alerts {
		if level(a) != theme.LevelOK {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// Update handles data and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if cmd, ok := m.poll.Update(msg, m.opts.Interval, m.show); ok {
		return m, cmd
	}
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	case silencedMsg:
		m.notice = silenceNotice(msg)
	}
	return m, nil
}

func silenceNotice(msg silencedMsg) string {
	if msg.err != nil {
		return "silence of " + msg.alert + " failed: " + msg.err.Error()
	}
	var ok, failed []string
	for _, am := range msg.res.Alertmanagers {
		if am.OK {
			ok = append(ok, am.URL)
		} else {
			failed = append(failed, am.URL+" ("+am.Error+")")
		}
	}
	n := fmt.Sprintf("%s silenced until %s on %s", msg.alert, widget.Clock(msg.res.EndsAt), strings.Join(ok, ", "))
	if len(failed) > 0 {
		n += "; NOT on " + strings.Join(failed, ", ")
	}
	return n
}

// show takes a fetched answer: firing alerts first, then pending, then the rest.
func (m *Model) show(resp api.AlertsResponse) {
	m.resp = resp
	sort.SliceStable(m.resp.Alerts, func(i, j int) bool {
		a, b := m.resp.Alerts[i], m.resp.Alerts[j]
		if a.Firing != b.Firing {
			return a.Firing
		}
		if pa, pb := a.State == "pending", b.State == "pending"; pa != pb {
			return pa
		}
		if a.Severity != b.Severity {
			return a.Severity == "critical"
		}
		return a.Name < b.Name
	})
	m.loaded = true
}

func (m *Model) visible() []api.Alert {
	if m.filter.Value() == "" {
		return m.resp.Alerts
	}
	var out []api.Alert
	for _, a := range m.resp.Alerts {
		fields := []string{a.Name, a.Severity, a.Summary}
		for k, v := range a.Labels {
			fields = append(fields, k+"="+v)
		}
		if m.filter.Match(fields...) {
			out = append(out, a)
		}
	}
	return out
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.asking != nil {
		return m.answerSilence(k)
	}
	if m.filter.Typing() {
		if m.filter.Update(k) {
			m.cursor = widget.Cursor{}
		}
		return nil
	}
	n := len(m.visible())
	if m.cursor.Navigate(k, m.keys, n, max(1, m.height-2)) {
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Open):
		m.detail = n > 0 && !m.detail
	case key.Matches(k, m.keys.Back):
		switch {
		case m.detail:
			m.detail = false
		case m.filter.Value() != "":
			m.filter.Clear()
		}
	case key.Matches(k, m.keys.Filter):
		m.detail = false
		m.filter.Start()
	case key.Matches(k, m.keys.Refresh):
		return m.poll.Restart()
	case k.String() == m.keys.Silence.Keys()[0]:
		// Matched by key, not through the binding: a viewer's binding is disabled (hidden from the
		// help), yet pressing it deserves an answer.
		m.askSilence()
	}
	return nil
}

// askSilence opens the silence prompt for the selected alert, or says why it cannot.
func (m *Model) askSilence() {
	vis := m.visible()
	switch {
	case !m.canWrite:
		m.notice = "read-only: silencing an alert needs the operator or admin role"
	case len(vis) == 0:
		m.notice = "no alert selected"
	default:
		a := vis[widget.Clamp(m.cursor.Index, len(vis))]
		m.asking = &a
		m.prompt.Reset()
		m.notice = ""
	}
}

// answerSilence takes the prompt's keys: enter silences (an optional leading duration, then why),
// esc cancels.
func (m *Model) answerSilence(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Cancel):
		m.asking, m.notice = nil, "silence cancelled"
		return nil
	case !key.Matches(k, m.keys.Submit):
		m.prompt.Update(k)
		return nil
	}
	d, why := silenceFor, strings.TrimSpace(m.prompt.Value())
	if first, rest, _ := strings.Cut(why, " "); first != "" {
		if v, err := time.ParseDuration(first); err == nil {
			d, why = v, strings.TrimSpace(rest)
		}
	}
	m.notice = ""
	if why == "" {
		m.notice = "say why: [duration] reason, e.g. \"4h rebuilding the standby\""
		return nil
	}
	a := *m.asking
	m.asking = nil
	matchers := map[string]string{"alertname": a.Name}
	for k, v := range a.Labels {
		if v != "" {
			matchers[k] = v
		}
	}
	m.notice = "silencing " + a.Name + "…"
	ctx, src := m.opts.Context, m.opts.Source
	req := api.SilenceRequest{Matchers: matchers, Duration: d.String(), Comment: why}
	return func() tea.Msg {
		res, err := src.CreateSilence(ctx, req)
		return silencedMsg{alert: a.Name, res: res, err: err}
	}
}

// level is a firing alert's severity, OK when quiet or for the record (info, the Watchdog).
func level(a api.Alert) theme.Level {
	switch {
	case !a.Firing, a.Severity == "info":
		return theme.LevelOK
	case a.Severity == "critical":
		return theme.LevelCrit
	}
	return theme.LevelWarn
}

// View renders the status line and the alert table (or the detail pane).
func (m *Model) View() string {
	th := m.opts.Theme
	now := m.opts.Now()
	lines := []string{m.statusLine(now)}
	if f := m.filter.View(); f != "" {
		lines = append(lines, f)
	}
	vis := m.visible()
	if m.asking != nil {
		lines = append(lines, th.Accent.Render(fmt.Sprintf("Silence %s (%s): [duration, default %s] why? ", m.asking.Name, m.asking.Severity, silenceFor))+
			m.prompt.View()+th.Muted.Render("  enter silences · esc cancels"))
	}
	if m.notice != "" {
		lines = append(lines, th.Muted.Render(m.notice))
	}
	switch {
	case m.detail && len(vis) > 0:
		lines = append(lines, m.detailLines(vis[widget.Clamp(m.cursor.Index, len(vis))], now)...)
	case len(vis) == 0:
		switch {
		case !m.loaded && m.poll.Err() != nil:
			lines = append(lines, th.Level(theme.LevelCrit).Render("Cannot load alerts: "+m.poll.Err().Error()))
		case !m.loaded:
			lines = append(lines, th.Muted.Render("Loading alerts…"))
		case m.filter.Value() != "":
			lines = append(lines, th.Muted.Render(fmt.Sprintf("Nothing matches the filter %q.", m.filter.Value())))
		default:
			lines = append(lines, th.Muted.Render("The server evaluates no alert conditions."))
		}
	default:
		lines = append(lines, m.header())
		start, end := m.cursor.Visible(max(1, m.height-len(lines)), len(vis))
		for i := start; i < end; i++ {
			lines = append(lines, m.rowLine(vis[i], i == m.cursor.Index, now))
		}
	}
	return widget.Lines(lines, m.width, m.height)
}

func (m *Model) statusLine(now time.Time) string {
	th := m.opts.Theme
	firing := map[theme.Level]int{}
	for _, a := range m.resp.Alerts {
		if a.Firing {
			firing[level(a)]++
		}
	}
	parts := []string{fmt.Sprintf("%d alerts", len(m.resp.Alerts))}
	if firing[theme.LevelCrit]+firing[theme.LevelWarn] == 0 && m.loaded {
		parts = append(parts, th.Level(theme.LevelOK).Render("none firing"))
	}
	for _, l := range []theme.Level{theme.LevelCrit, theme.LevelWarn} {
		if firing[l] > 0 {
			parts = append(parts, th.Level(l).Render(fmt.Sprintf("%d %s firing", firing[l], l.Word())))
		}
	}
	if !m.resp.EvaluatedAt.IsZero() {
		parts = append(parts, th.Muted.Render("evaluated "+widget.Clock(m.resp.EvaluatedAt)+" ("+widget.Age(m.resp.EvaluatedAt, now)+")"))
	}
	return strings.Join(parts, th.Muted.Render(" · "))
}

const (
	nameW  = 22
	stateW = 8
	sinceW = 10
	valueW = 13
)

func (m *Model) header() string {
	cols := []string{widget.Fit("ALERT", nameW), widget.Fit("STATE", stateW), widget.Fit("SINCE", sinceW), widget.FitLeft("VALUE / LIMIT", valueW), "SUMMARY"}
	return strings.Repeat(" ", 2+theme.MarkerWidth+1) + m.opts.Theme.ColumnHeader.Render(strings.Join(cols, " "))
}

func number(v float64) string { return widget.Number(v) }

func (m *Model) rowLine(a api.Alert, selected bool, now time.Time) string {
	th := m.opts.Theme
	if selected {
		th = m.plain
	}
	l := level(a)
	state, since := "quiet", "-"
	switch {
	case a.Firing:
		state = "FIRING"
		if a.Since != nil {
			since = widget.Age(*a.Since, now)
		}
	case a.State == "pending":
		state, since = "pending", widget.Age(a.ActiveAt, now)
	case a.State == "resolved" && a.ResolvedAt != nil:
		state, since = "resolved", widget.Age(*a.ResolvedAt, now)
	}
	cols := []string{
		widget.Fit(th.Bold.Render(a.Name), nameW),
		th.Level(l).Render(widget.Fit(state, stateW)),
		widget.Fit(since, sinceW),
		widget.FitLeft(number(a.Value)+" / "+number(a.Threshold), valueW),
		th.Muted.Render(a.Summary),
	}
	line := widget.Fit(widget.Gutter(selected)+th.Marker(l)+" "+strings.Join(cols, " "), m.width)
	if selected {
		line = m.opts.Theme.Selected.Render(line)
	}
	return line
}

func (m *Model) detailLines(a api.Alert, now time.Time) []string {
	th := m.opts.Theme
	since := "-"
	if a.Since != nil {
		since = widget.Clock(*a.Since) + " (" + widget.Age(*a.Since, now) + ")"
	}
	firing := "no"
	if a.Firing {
		firing = "yes"
	}
	fields := [][2]string{{"severity", a.Severity}, {"firing", firing}, {"since", since},
		{"value", strconv.FormatFloat(a.Value, 'f', -1, 64)}, {"threshold", strconv.FormatFloat(a.Threshold, 'f', -1, 64)}, {"summary", a.Summary}}
	if a.State != "" {
		fields = append(fields, [2]string{"state", a.State}, [2]string{"active since", widget.Clock(a.ActiveAt)})
	}
	if a.RunbookURL != "" {
		fields = append(fields, [2]string{"runbook", a.RunbookURL})
	}
	labels := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, k := range labels {
		fields = append(fields, [2]string{"label " + k, a.Labels[k]})
	}
	lines := []string{th.Marker(level(a)) + " " + th.Bold.Render(a.Name) + th.Muted.Render("   esc/enter closes"), ""}
	for _, f := range fields {
		lines = append(lines, "  "+th.Muted.Render(widget.Fit(f[0], 22))+" "+f[1])
	}
	return lines
}

// ShortHelp lists the keys of the current mode.
func (m *Model) ShortHelp() []key.Binding {
	if m.filter.Typing() || m.asking != nil {
		return []key.Binding{m.keys.Submit, m.keys.Cancel}
	}
	return []key.Binding{m.keys.Open, m.keys.Silence, m.keys.Filter, m.keys.Refresh, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.PageUp, m.keys.PageDown},
		{m.keys.Open, m.keys.Back, m.keys.Filter, m.keys.Refresh, m.keys.Silence},
	}
}
