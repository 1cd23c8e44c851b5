// Package replication is the console's live replication view: per collector and primary, its
// standbys with lags, state and sync state, lag bars and sparklines, slots, WAL receivers and logical
// subscriptions, fed by the SSE stream with polling as the fallback.
package replication

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Source is what the view needs from the API.
type Source interface {
	Replication(ctx context.Context, collectorID string) (api.ReplicationResponse, error)
	StreamReplication(ctx context.Context, fn func(api.CollectorTopology)) error
}

// refreshSteps are the poll intervals +/- move between.
func refreshSteps() []time.Duration {
	return []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}
}

// Options configure the view.
type Options struct {
	view.Env
	Source     Source
	Thresholds Thresholds
	Refresh    time.Duration // initial poll interval; rounded down to 1s, 2s, 5s, 10s, 30s or 1m
	History    int           // samples kept per standby (default 120)
	NoStream   bool          // poll only
}

// Model is the replication view.
type Model struct {
	opts  Options
	plain theme.Theme
	keys  keys.Map

	width, height int

	state      state
	lay        layout
	dirty      bool
	loaded     bool
	updatedAt  time.Time
	refreshIdx int

	poll          *view.Poller[api.ReplicationResponse]
	stream        *widget.Pump[api.CollectorTopology]
	streamGen     int // retry timers of an earlier failure are ignored
	streamBackoff backoff.Backoff
	streamLive    bool
	streamErr     error

	paused   bool
	held     map[string]api.CollectorTopology
	heldPoll *api.ReplicationResponse

	filter widget.Filter
	selKey string
	offset int

	detail       bool
	detailOffset int
}

// New builds the view; nothing happens on the network until Init's commands run.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Thresholds == (Thresholds{}) {
		o.Thresholds = DefaultThresholds()
	}
	if o.History <= 0 {
		o.History = 120
	}
	m := &Model{
		opts:          o,
		plain:         o.Theme.Plain(),
		keys:          o.Keys,
		state:         newState(o.History),
		held:          map[string]api.CollectorTopology{},
		filter:        widget.NewFilter(o.Theme, o.Keys),
		streamBackoff: backoff.Backoff{Min: time.Second, Max: 30 * time.Second},
		refreshIdx:    2,
		width:         80,
		height:        20,
	}
	m.poll = view.NewPoller(o.Context, conn.SourceReplication, func(ctx context.Context) (api.ReplicationResponse, error) {
		return o.Source.Replication(ctx, "")
	})
	m.poll.Hold = func() bool { return m.paused }
	if o.Refresh > 0 {
		m.refreshIdx = 0 // below the first step: the first step
		for i, d := range refreshSteps() {
			if d <= o.Refresh {
				m.refreshIdx = i
			}
		}
	}
	return m
}

func (m *Model) now() time.Time         { return m.opts.Now() }
func (m *Model) refresh() time.Duration { return refreshSteps()[m.refreshIdx] }

// Init polls at once and opens the stream.
func (m *Model) Init() tea.Cmd {
	if m.opts.NoStream {
		return m.poll.Fetch()
	}
	return tea.Batch(m.poll.Fetch(), m.openStream())
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) {
	if w != m.width {
		m.dirty = true
	}
	m.width, m.height = w, h
}

// Capturing reports that keys go to the filter input, not to the shell's shortcuts.
func (m *Model) Capturing() bool { return m.filter.Typing() }

// Update handles feed messages and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if cmd, ok := m.handleFeed(msg); ok {
		return m, cmd
	}
	if k, ok := msg.(tea.KeyMsg); ok {
		return m, m.handleKey(k)
	}
	return m, nil
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.filter.Typing() {
		if m.filter.Update(k) {
			m.dirty = true
		}
		return nil
	}
	if m.detail {
		switch {
		case key.Matches(k, m.keys.Back, m.keys.Open):
			m.detail = false
		case key.Matches(k, m.keys.Up):
			m.detailOffset = max(0, m.detailOffset-1)
		case key.Matches(k, m.keys.Down):
			m.detailOffset++
		case key.Matches(k, m.keys.Top):
			m.detailOffset = 0
		case key.Matches(k, m.keys.Bottom):
			m.detailOffset = 1 << 30 // clamped when drawn
		default:
			return m.globalKey(k)
		}
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Up):
		m.moveCursor(-1)
	case key.Matches(k, m.keys.Down):
		m.moveCursor(1)
	case key.Matches(k, m.keys.PageUp):
		m.moveCursor(-max(1, m.bodyHeight()/2))
	case key.Matches(k, m.keys.PageDown):
		m.moveCursor(max(1, m.bodyHeight()/2))
	case key.Matches(k, m.keys.Top):
		m.moveCursor(-1 << 30)
	case key.Matches(k, m.keys.Bottom):
		m.moveCursor(1 << 30)
	case key.Matches(k, m.keys.Open):
		if m.selKey != "" {
			m.detail, m.detailOffset = true, 0
		}
	case key.Matches(k, m.keys.Filter):
		m.filter.Start()
	case key.Matches(k, m.keys.Back):
		if m.filter.Value() != "" {
			m.filter.Clear()
			m.dirty = true
		}
	default:
		return m.globalKey(k)
	}
	return nil
}

// globalKey handles the feed keys, valid in the list and in the detail pane.
func (m *Model) globalKey(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Pause):
		if m.paused {
			return m.resume()
		}
		m.paused = true
	case key.Matches(k, m.keys.Faster):
		if m.refreshIdx > 0 {
			m.refreshIdx--
			return m.poll.Restart()
		}
	case key.Matches(k, m.keys.Slower):
		if m.refreshIdx < len(refreshSteps())-1 {
			m.refreshIdx++
			return m.poll.Restart()
		}
	case key.Matches(k, m.keys.Refresh):
		if !m.paused {
			return m.poll.Restart()
		}
	}
	return nil
}

// relayout rebuilds the rows when the data, the filter or the width changed.
func (m *Model) relayout() {
	if !m.dirty {
		return
	}
	m.lay = m.buildLayout()
	m.dirty = false
	if m.selIndex() < 0 {
		m.selKey = ""
		m.moveCursor(0)
	}
}

func (m *Model) selIndex() int {
	if m.selKey == "" {
		return -1
	}
	for i := range m.lay.rows {
		if m.lay.rows[i].key == m.selKey {
			return i
		}
	}
	return -1
}

// moveCursor moves the selection by delta selectable rows, clamped to the first and last.
func (m *Model) moveCursor(delta int) {
	m.relayout()
	var selectable []int
	for i := range m.lay.rows {
		if m.lay.rows[i].key != "" {
			selectable = append(selectable, i)
		}
	}
	if len(selectable) == 0 {
		m.selKey = ""
		return
	}
	cur := 0
	if idx := m.selIndex(); idx >= 0 {
		for j, i := range selectable {
			if i == idx {
				cur = j
			}
		}
	} else if delta > 0 {
		delta--
	}
	cur = widget.Clamp(cur+delta, len(selectable))
	m.selKey = m.lay.rows[selectable[cur]].key
}

// bodyHeight is the lines left for rows under the status (and filter) lines.
func (m *Model) bodyHeight() int {
	h := m.height - 1
	if m.filter.View() != "" {
		h--
	}
	return max(h, 1)
}

// View renders the status line and the visible rows (or the detail pane).
func (m *Model) View() string {
	m.relayout()
	now := m.now()
	var b strings.Builder
	b.WriteString(m.statusLine(now))
	if f := m.filter.View(); f != "" {
		b.WriteString("\n" + widget.Fit(f, m.width))
	}
	height := m.bodyHeight()
	var lines []string
	switch {
	case m.detail && m.selIndex() >= 0:
		lines = m.detailLines(&m.lay.rows[m.selIndex()], now)
		m.detailOffset = max(0, min(m.detailOffset, len(lines)-height))
		lines = lines[m.detailOffset:]
	case len(m.lay.rows) == 0:
		lines = []string{m.emptyText()}
	default:
		lines = m.visibleLines(height, now)
	}
	for i := 0; i < height; i++ {
		b.WriteString("\n")
		if i < len(lines) {
			b.WriteString(widget.Fit(lines[i], m.width))
		} else {
			b.WriteString(strings.Repeat(" ", m.width))
		}
	}
	return b.String()
}

// visibleLines renders only the rows in the window, so the cost of a frame does not grow with the fleet.
func (m *Model) visibleLines(height int, now time.Time) []string {
	selStart, selEnd := 0, 0
	if i := m.selIndex(); i >= 0 {
		r := m.lay.rows[i]
		selStart, selEnd = r.line, r.line+r.height
		// Keep the collector heading in sight when its first entity is selected.
		if i > 0 && m.lay.rows[i-1].kind == rowCollector {
			selStart = m.lay.rows[i-1].line
		}
	}
	m.offset = widget.Window(m.offset, m.lay.lines, height, selStart, selEnd)
	lines := make([]string, 0, height)
	// Rows are sorted by line: find the first visible one by binary search.
	lo, hi := 0, len(m.lay.rows)
	for lo < hi {
		mid := (lo + hi) / 2
		if r := m.lay.rows[mid]; r.line+r.height <= m.offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < len(m.lay.rows) && len(lines) < height; i++ {
		r := &m.lay.rows[i]
		rendered := m.renderRow(r, r.key != "" && r.key == m.selKey, now)
		skip := max(0, m.offset-r.line)
		lines = append(lines, rendered[min(skip, len(rendered)):]...)
	}
	if len(lines) > height {
		lines = lines[:height]
	}
	return lines
}

func (m *Model) emptyText() string {
	th := m.opts.Theme
	switch {
	case !m.loaded && m.poll.Err() != nil:
		return th.Level(theme.LevelCrit).Render("Cannot load the replication topology: " + m.poll.Err().Error())
	case !m.loaded:
		return th.Muted.Render("Loading the replication topology…")
	case m.filter.Value() != "":
		return th.Muted.Render("Nothing matches the filter " + fmt.Sprintf("%q", m.filter.Value()) + ".")
	}
	return th.Muted.Render("No collector reports replication yet.")
}

func (m *Model) statusLine(now time.Time) string {
	th := m.opts.Theme
	var parts []string
	switch {
	case m.opts.NoStream:
		parts = append(parts, th.Muted.Render("polling"))
	case m.streamLive:
		parts = append(parts, th.Level(theme.LevelOK).Render("SSE live"))
	case m.streamErr != nil:
		parts = append(parts, th.Level(theme.LevelWarn).Render("SSE down, polling"))
	default:
		parts = append(parts, th.Muted.Render("SSE connecting"))
	}
	parts = append(parts, "refresh "+refreshSteps()[m.refreshIdx].String())
	if m.paused {
		held := len(m.held)
		if m.heldPoll != nil {
			held++
		}
		parts = append(parts, th.Level(theme.LevelWarn).Render(fmt.Sprintf("PAUSED (%d updates held)", held)))
	}
	parts = append(parts, count(len(m.state.order), "collector", "collectors"), count(m.lay.standbys, "standby", "standbys"))
	for _, l := range []theme.Level{theme.LevelCrit, theme.LevelWarn} {
		if n := m.lay.counts[l]; n > 0 {
			parts = append(parts, th.Level(l).Render(fmt.Sprintf("%d %s", n, l.Word())))
		}
	}
	if !m.updatedAt.IsZero() {
		parts = append(parts, th.Muted.Render(widget.Clock(m.updatedAt)))
	}
	return widget.Fit(strings.Join(parts, th.Muted.Render(" · ")), m.width)
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ShortHelp lists the keys of the current mode.
func (m *Model) ShortHelp() []key.Binding {
	switch {
	case m.filter.Typing():
		return []key.Binding{m.keys.Submit, m.keys.Cancel}
	case m.detail:
		return []key.Binding{m.keys.Back, m.keys.Up, m.keys.Down, m.keys.Pause}
	}
	return []key.Binding{m.keys.Open, m.keys.Filter, m.keys.Pause, m.keys.Faster, m.keys.Slower, m.keys.Up, m.keys.Down}
}

// FullHelp groups every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.PageUp, m.keys.PageDown},
		{m.keys.Open, m.keys.Back, m.keys.Filter},
		{m.keys.Pause, m.keys.Faster, m.keys.Slower, m.keys.Refresh},
	}
}
