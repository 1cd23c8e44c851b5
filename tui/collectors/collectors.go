// Package collectors is the console's collector list: last push age, instances, buffer utilization,
// failures and version, with deregistration for operators.
package collectors

import (
	"context"
	"fmt"
	"sort"
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
	Collectors(ctx context.Context) ([]api.Collector, error)
	DeleteCollector(ctx context.Context, id string) error
}

// Options configure the view.
type Options struct {
	view.Env
	Source   Source
	Interval time.Duration // poll interval (default 10s)
}

// Thresholds from the deployment plan's alert rules: buffer over 70 %, collection failures over 1 %.
const (
	bufferWarn  = 0.70
	bufferCrit  = 0.90
	failureWarn = 0.01
)

// Model is the collectors view.
type Model struct {
	opts  Options
	keys  keys.Map
	plain theme.Theme

	width, height int

	poll      *view.Poller[[]api.Collector]
	list      []api.Collector
	loaded    bool
	updatedAt time.Time

	canWrite bool
	filter   widget.Filter
	cursor   widget.Cursor
	detail   bool
	confirm  widget.Confirm
	pending  *api.Collector // awaiting confirmation
	notice   string
}

type deletedMsg struct {
	c   api.Collector
	err error
}

// New builds the view. It starts read-only until SetRole grants more.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	m := &Model{
		opts: o, keys: o.Keys, plain: o.Theme.Plain(),
		poll:    view.NewPoller(o.Context, conn.SourceCollectors, o.Source.Collectors),
		filter:  widget.NewFilter(o.Theme, o.Keys),
		confirm: widget.NewConfirm(o.Theme, o.Keys),
		width:   80, height: 20,
	}
	m.SetRole(api.RoleViewer)
	return m
}

// SetRole enables deregistration for operators and admins.
func (m *Model) SetRole(role string) {
	m.canWrite = role == api.RoleAdmin || role == api.RoleOperator
	m.keys.Deregister.SetEnabled(m.canWrite)
}

// Init fetches the list.
func (m *Model) Init() tea.Cmd { return m.poll.Fetch() }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Capturing reports that keys go to the filter or the prompt.
func (m *Model) Capturing() bool { return m.filter.Typing() || m.confirm.Open() }

// Update handles data and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if cmd, ok := m.poll.Update(msg, m.opts.Interval, m.show); ok {
		return m, cmd
	}
	switch msg := msg.(type) {
	case deletedMsg:
		if msg.err != nil {
			m.notice = "deregistering " + msg.c.Name + " failed: " + msg.err.Error()
			return m, nil
		}
		m.notice = "deregistered " + msg.c.Name + " (" + msg.c.ID + ")"
		return m, m.poll.Restart()
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	}
	return m, nil
}

// show takes a fetched list, sorted by name.
func (m *Model) show(list []api.Collector) {
	m.list = list
	sort.Slice(m.list, func(i, j int) bool {
		if m.list[i].Name != m.list[j].Name {
			return m.list[i].Name < m.list[j].Name
		}
		return m.list[i].ID < m.list[j].ID
	})
	m.loaded = true
	m.updatedAt = m.opts.Now()
}

func (m *Model) visible() []api.Collector {
	if m.filter.Value() == "" {
		return m.list
	}
	var out []api.Collector
	for _, c := range m.list {
		if m.filter.Match(c.Name, c.Hostname, c.ID, c.Version, c.Status) {
			out = append(out, c)
		}
	}
	return out
}

func (m *Model) selected() (api.Collector, bool) {
	v := m.visible()
	if len(v) == 0 {
		return api.Collector{}, false
	}
	return v[widget.Clamp(m.cursor.Index, len(v))], true
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.confirm.Open() {
		switch m.confirm.Update(k) {
		case widget.Yes:
			c := *m.pending
			m.pending = nil
			m.notice = "deregistering " + c.Name + "…"
			ctx, src := m.opts.Context, m.opts.Source
			return func() tea.Msg { return deletedMsg{c: c, err: src.DeleteCollector(ctx, c.ID)} }
		case widget.No:
			m.pending = nil
			m.notice = "deregistration cancelled"
		}
		return nil
	}
	if m.filter.Typing() {
		if m.filter.Update(k) {
			m.cursor = widget.Cursor{}
		}
		return nil
	}
	if m.cursor.Navigate(k, m.keys, len(m.visible()), max(1, m.height-3)) {
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Open):
		_, ok := m.selected()
		m.detail = ok && !m.detail
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
	case k.String() == m.keys.Deregister.Keys()[0]:
		// Matched by key, not through the binding: a viewer's binding is disabled (hidden from the
		// help), yet pressing it deserves an answer rather than silence.
		return m.askDeregister()
	}
	return nil
}

// askDeregister opens the confirmation, or says why it cannot.
func (m *Model) askDeregister() tea.Cmd {
	c, ok := m.selected()
	switch {
	case !m.canWrite:
		m.notice = "read-only: deregistering a collector needs the operator or admin role"
	case !ok:
		m.notice = "no collector selected"
	default:
		m.pending = &c
		m.confirm.Ask(fmt.Sprintf("Deregister %s (%s)? Its token is revoked and its pushes refused.", c.Name, widget.Short(c.ID, 9)))
	}
	return nil
}

// Level judges a collector: stale or a nearly full buffer is critical; failures over 1 % and a
// collector that never pushed are warnings.
func Level(c api.Collector) (theme.Level, string) {
	switch {
	case c.Status == "stale":
		return theme.LevelCrit, "STALE"
	case c.BufferUtilization >= bufferCrit:
		return theme.LevelCrit, "CRIT"
	case c.Status == "never_pushed":
		return theme.LevelWarn, "NEW"
	case c.BufferUtilization >= bufferWarn || failureRate(c) > failureWarn:
		return theme.LevelWarn, "WARN"
	}
	return theme.LevelOK, "OK"
}

func failureRate(c api.Collector) float64 {
	if c.CollectionsTotal <= 0 {
		return 0
	}
	return float64(c.CollectionFailuresTotal) / float64(c.CollectionsTotal)
}

// View renders the status line, the table (or the detail pane) and the prompt.
func (m *Model) View() string {
	th := m.opts.Theme
	now := m.opts.Now()
	lines := []string{m.statusLine()}
	if f := m.filter.View(); f != "" {
		lines = append(lines, f)
	}
	var footer []string
	if p := m.confirm.View(); p != "" {
		footer = strings.Split(p, "\n")
	} else if m.notice != "" {
		footer = []string{th.Notice.Render(m.notice)}
	}
	body := max(1, m.height-len(lines)-len(footer))
	vis := m.visible()
	switch {
	case m.detail:
		c, _ := m.selected()
		lines = append(lines, m.detailLines(c, now)...)
	case len(vis) == 0:
		lines = append(lines, m.emptyText())
	default:
		lines = append(lines, m.header())
		start, end := m.cursor.Visible(body-1, len(vis))
		for i := start; i < end; i++ {
			lines = append(lines, m.rowLine(vis[i], i == m.cursor.Index, now))
		}
	}
	for len(lines) < m.height-len(footer) {
		lines = append(lines, "")
	}
	lines = append(lines[:m.height-len(footer)], footer...)
	return widget.Lines(lines, m.width, m.height)
}

func (m *Model) statusLine() string {
	th := m.opts.Theme
	parts := []string{fmt.Sprintf("%d collectors", len(m.list))}
	counts := map[theme.Level]int{}
	for _, c := range m.list {
		l, _ := Level(c)
		counts[l]++
	}
	for _, l := range []theme.Level{theme.LevelCrit, theme.LevelWarn} {
		if counts[l] > 0 {
			parts = append(parts, th.Level(l).Render(fmt.Sprintf("%d %s", counts[l], l.Word())))
		}
	}
	parts = append(parts, "every "+m.opts.Interval.String())
	if !m.updatedAt.IsZero() {
		parts = append(parts, th.Muted.Render("updated "+widget.Clock(m.updatedAt)))
	}
	if !m.canWrite {
		parts = append(parts, th.Muted.Render("read-only"))
	}
	return strings.Join(parts, th.Muted.Render(" · "))
}

func (m *Model) emptyText() string {
	th := m.opts.Theme
	switch {
	case !m.loaded && m.poll.Err() != nil:
		return th.Level(theme.LevelCrit).Render("Cannot load collectors: " + m.poll.Err().Error())
	case !m.loaded:
		return th.Muted.Render("Loading collectors…")
	case m.filter.Value() != "":
		return th.Muted.Render(fmt.Sprintf("Nothing matches the filter %q.", m.filter.Value()))
	}
	return th.Muted.Render("No collector is registered. Register one with `pganalytics register`.")
}

// Column widths; the host and the id appear when there is room.
const (
	nameW    = 16
	pushW    = 11
	instW    = 4
	bufBarW  = 6
	bufW     = bufBarW + 5
	failW    = 12
	versionW = 8
	hostW    = 18
	idW      = 36
)

func (m *Model) columns() (host, id bool) {
	fixed := 2 + theme.MarkerWidth + 1 + nameW + 1 + pushW + 1 + instW + 1 + bufW + 1 + failW + 1 + versionW
	return m.width >= fixed+1+hostW, m.width >= fixed+1+hostW+1+idW
}

func (m *Model) header() string {
	host, id := m.columns()
	cols := []string{widget.Fit("NAME", nameW), widget.Fit("LAST PUSH", pushW), widget.FitLeft("INST", instW),
		widget.Fit("BUFFER", bufW), widget.FitLeft("FAILURES", failW), widget.Fit("VERSION", versionW)}
	if host {
		cols = append(cols, widget.Fit("HOST", hostW))
	}
	if id {
		cols = append(cols, "ID")
	}
	return strings.Repeat(" ", 2+theme.MarkerWidth+1) + m.opts.Theme.ColumnHeader.Render(strings.Join(cols, " "))
}

func (m *Model) rowLine(c api.Collector, selected bool, now time.Time) string {
	th := m.opts.Theme
	if selected {
		th = m.plain
	}
	level, word := Level(c)
	push := "never"
	if c.LastPushAt != nil {
		push = widget.Age(*c.LastPushAt, now)
	}
	pushLevel := theme.LevelNone
	if c.Status == "stale" {
		pushLevel = theme.LevelCrit
	}
	bufLevel := theme.LevelOK
	switch {
	case c.BufferUtilization >= bufferCrit:
		bufLevel = theme.LevelCrit
	case c.BufferUtilization >= bufferWarn:
		bufLevel = theme.LevelWarn
	}
	failLevel := theme.LevelNone
	if failureRate(c) > failureWarn {
		failLevel = theme.LevelWarn
	}
	failures := fmt.Sprintf("%d", c.CollectionFailuresTotal)
	if c.CollectionsTotal > 0 {
		failures = fmt.Sprintf("%d %4.1f%%", c.CollectionFailuresTotal, 100*failureRate(c))
	}
	cols := []string{
		widget.Fit(th.Bold.Render(c.Name), nameW),
		th.Level(pushLevel).Render(widget.Fit(push, pushW)),
		widget.FitLeft(fmt.Sprint(c.Instances), instW),
		th.Level(bufLevel).Render(widget.Bar(c.BufferUtilization, bufBarW) + widget.FitLeft(fmt.Sprintf("%.0f%%", 100*c.BufferUtilization), 5)),
		th.Level(failLevel).Render(widget.FitLeft(failures, failW)),
		widget.Fit(orDash(c.Version), versionW),
	}
	host, id := m.columns()
	if host {
		cols = append(cols, widget.Fit(c.Hostname, hostW))
	}
	if id {
		cols = append(cols, th.Muted.Render(c.ID))
	}
	line := widget.Fit(widget.Gutter(selected)+th.MarkerText(level, word)+" "+strings.Join(cols, " "), m.width)
	if selected {
		line = m.opts.Theme.Selected.Render(line)
	}
	return line
}

func (m *Model) detailLines(c api.Collector, now time.Time) []string {
	th := m.opts.Theme
	level, word := Level(c)
	push := "never"
	if c.LastPushAt != nil {
		push = widget.Clock(*c.LastPushAt) + " (" + widget.Age(*c.LastPushAt, now) + ")"
	}
	fields := [][2]string{
		{"id", c.ID}, {"hostname", c.Hostname}, {"status", c.Status}, {"version", orDash(c.Version)},
		{"registered", c.RegisteredAt.Local().Format(time.DateTime)}, {"last push", push},
		{"interval", widget.Seconds(c.IntervalSeconds)}, {"instances", fmt.Sprint(c.Instances)},
		{"buffer", fmt.Sprintf("%.0f%% used, %d samples dropped", 100*c.BufferUtilization, c.BufferDroppedTotal)},
		{"collections", fmt.Sprintf("%d, %d failed (%.2f%%)", c.CollectionsTotal, c.CollectionFailuresTotal, 100*failureRate(c))},
	}
	lines := []string{th.MarkerText(level, word) + " " + th.Bold.Render("collector "+c.Name) + th.Muted.Render("   esc/enter closes"), ""}
	for _, f := range fields {
		lines = append(lines, "  "+th.Muted.Render(widget.Fit(f[0], 14))+" "+f[1])
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ShortHelp lists the keys of the current mode.
func (m *Model) ShortHelp() []key.Binding {
	switch {
	case m.confirm.Open():
		return []key.Binding{m.keys.Confirm, m.keys.Deny}
	case m.filter.Typing():
		return []key.Binding{m.keys.Submit, m.keys.Cancel}
	}
	return []key.Binding{m.keys.Open, m.keys.Deregister, m.keys.Filter, m.keys.Refresh, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.PageUp, m.keys.PageDown},
		{m.keys.Open, m.keys.Back, m.keys.Filter, m.keys.Refresh},
		{m.keys.Deregister, m.keys.Confirm, m.keys.Deny},
	}
}
