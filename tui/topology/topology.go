// Package topology is the console's fleet view: every cluster as a tree (primary → standbys →
// cascading standbys, with timelines and lags) beside the feed of replication events, live or as
// it was at any time of the server's history. `t` goes to a time, `[` and `]` step one collection
// interval, `p` and `n` jump to the previous and next event, `l` comes back to live.
package topology

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/topology"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Source is what the view needs from the API.
type Source interface {
	Replication(ctx context.Context, collectorID string) (api.ReplicationResponse, error)
	ReplicationAt(ctx context.Context, at time.Time) (api.ReplicationResponse, error)
	Events(ctx context.Context, q client.EventsQuery) (api.EventsResponse, error)
	Collectors(ctx context.Context) ([]api.Collector, error)
	// StreamEvents follows the replication stream's events until ctx ends or it breaks.
	StreamEvents(ctx context.Context, fn func(api.Event)) error
}

// feedSize is how many events the feed holds.
const feedSize = 100

// Options configure the view.
type Options struct {
	view.Env
	Source  Source
	Refresh time.Duration // live poll interval (default 10s); every streamed event also refetches
	Step    time.Duration // what [ and ] step by until the collectors tell their interval (default 10s)
}

// frame is what the view shows: the clusters and the events up to a moment.
type frame struct {
	at       time.Time // zero: live
	clusters []api.ClusterView
	events   []api.Event
	interval time.Duration // the shortest collection interval of the collectors (live frames)
}

// frameMsg is a time-travel fetch's answer; gen tells a stale answer from the current one.
type frameMsg struct {
	gen   int
	frame frame
	err   error
}

// jumpMsg is where a previous/next-event search landed (ok false: no such event).
type jumpMsg struct {
	gen  int
	at   time.Time
	what string
	ok   bool
	err  error
}

// reconnectMsg asks to open the event stream again after a failure of the stream gen.
type reconnectMsg struct{ gen int }

// Model is the topology view.
type Model struct {
	opts Options
	keys keys.Map

	width, height int

	poll   *view.Poller[frame]
	live   frame
	loaded bool

	stream        *widget.Pump[api.Event]
	streamGen     int
	streamBackoff backoff.Backoff

	at      time.Time // zero: live
	past    frame
	gen     int
	loading bool
	err     error
	jumping bool   // an event search is under way
	queued  []bool // event jumps pressed meanwhile (true: next), taken once it lands

	asking bool
	prompt widget.Input
	notice string
	offset int
}

// New builds the view.
func New(o Options) *Model {
	o.Env = o.Env.WithDefaults()
	if o.Refresh <= 0 {
		o.Refresh = 10 * time.Second
	}
	if o.Step <= 0 {
		o.Step = 10 * time.Second
	}
	m := &Model{opts: o, keys: o.Keys, width: 80, height: 20,
		prompt: widget.Input{Limit: 40}, streamBackoff: backoff.Backoff{Min: time.Second, Max: 30 * time.Second}}
	src := o.Source
	m.poll = view.NewPoller(o.Context, conn.SourceTopology, func(ctx context.Context) (frame, error) {
		rr, err := src.Replication(ctx, "")
		if err != nil {
			return frame{}, err
		}
		er, err := src.Events(ctx, client.EventsQuery{Limit: feedSize})
		if err != nil {
			return frame{}, err
		}
		f := frame{clusters: rr.Clusters, events: er.Events}
		cols, err := src.Collectors(ctx)
		for _, c := range cols {
			if d := time.Duration(c.IntervalSeconds * float64(time.Second)); d > 0 && (f.interval == 0 || d < f.interval) {
				f.interval = d
			}
		}
		return f, err
	})
	m.poll.Hold = func() bool { return !m.at.IsZero() }
	return m
}

func (m *Model) gotLive(f frame) {
	// An event streamed after this fetch was answered stays at the head of the feed.
	var newer []api.Event
	for _, e := range m.live.events {
		if len(f.events) > 0 && e.ID <= f.events[0].ID {
			break
		}
		newer = append(newer, e)
	}
	f.events = append(newer, f.events...)[:min(len(newer)+len(f.events), feedSize)]
	m.live, m.loaded = f, true
	if f.interval > 0 {
		m.opts.Step = f.interval
	}
}

// Init starts the live poll and the event stream.
func (m *Model) Init() tea.Cmd { return tea.Batch(m.poll.Fetch(), m.openStream()) }

func (m *Model) openStream() tea.Cmd {
	ctx, src := m.opts.Context, m.opts.Source
	var start tea.Cmd
	m.stream, start = widget.StartPump(ctx, func(emit func(api.Event)) error { return src.StreamEvents(ctx, emit) })
	return start
}

// streamed takes one event of the stream: into the live feed at once, and the clusters fetched
// again to show what it changed.
func (m *Model) streamed(ev widget.Event[api.Event]) tea.Cmd {
	if ev.Done {
		if m.opts.Context.Err() != nil {
			return nil
		}
		m.streamGen++
		gen := m.streamGen
		return tea.Tick(m.streamBackoff.Next(), func(time.Time) tea.Msg { return reconnectMsg{gen} })
	}
	m.streamBackoff.Reset()
	e := ev.Value
	if len(m.live.events) == 0 || m.live.events[0].ID < e.ID {
		m.live.events = append([]api.Event{e}, m.live.events[:min(len(m.live.events), feedSize-1)]...)
	}
	cmds := []tea.Cmd{m.stream.Next()}
	if m.at.IsZero() {
		cmds = append(cmds, m.poll.Restart())
	}
	return tea.Batch(cmds...)
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Capturing reports that keys go to the time prompt.
func (m *Model) Capturing() bool { return m.asking }

// Badge counts the clusters in trouble (split brain, no primary), for the tab title.
func (m *Model) Badge() string {
	n := 0
	for i := range m.live.clusters {
		if clusterLevel(&m.live.clusters[i]) == theme.LevelCrit {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// ShortHelp lists the view's main keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.keys
	if m.at.IsZero() {
		return []key.Binding{k.GoToTime, k.StepBack, k.PrevEvent, k.Up, k.Down}
	}
	return []key.Binding{k.StepBack, k.StepForward, k.PrevEvent, k.NextEvent, k.GoToTime, k.Live}
}

// FullHelp lists every key of the view.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.GoToTime, k.StepBack, k.StepForward, k.PrevEvent, k.NextEvent, k.Live}, {k.Up, k.Down, k.Top, k.Refresh}}
}

// Update handles data and keys.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if cmd, ok := m.poll.Update(msg, m.opts.Refresh, m.gotLive); ok {
		return m, cmd
	}
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	case widget.Event[api.Event]:
		if msg.Pump != m.stream {
			return m, nil
		}
		return m, m.streamed(msg)
	case reconnectMsg:
		if msg.gen != m.streamGen {
			return m, nil
		}
		return m, m.openStream()
	case frameMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.loading, m.err = false, msg.err
		if msg.err == nil {
			m.past = msg.frame
		}
	case jumpMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.loading, m.jumping = false, false
		switch {
		case msg.err != nil:
			m.err, m.queued = msg.err, nil
		case !msg.ok:
			m.notice, m.queued = "no "+msg.what+" event", nil
		default:
			cmd := m.travel(msg.at)
			if len(m.queued) > 0 && !m.at.IsZero() {
				next := m.queued[0]
				m.queued = m.queued[1:]
				return m, tea.Batch(cmd, m.jump(next))
			}
			return m, cmd
		}
	}
	return m, nil
}

func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	if m.asking {
		return m.answerTime(k)
	}
	m.notice = ""
	switch {
	case key.Matches(k, m.keys.GoToTime):
		m.asking = true
		m.prompt.Reset()
	case key.Matches(k, m.keys.StepBack):
		return m.travel(m.moment().Add(-m.opts.Step))
	case key.Matches(k, m.keys.StepForward):
		if m.at.IsZero() {
			return nil
		}
		return m.travel(m.at.Add(m.opts.Step))
	case key.Matches(k, m.keys.PrevEvent):
		return m.jump(false)
	case key.Matches(k, m.keys.NextEvent):
		if m.at.IsZero() && !m.jumping {
			return nil // nothing comes after live
		}
		return m.jump(true)
	case key.Matches(k, m.keys.Live), key.Matches(k, m.keys.Back):
		return m.goLive()
	case key.Matches(k, m.keys.Refresh):
		if m.at.IsZero() {
			return m.poll.Restart()
		}
		return m.travel(m.at)
	case key.Matches(k, m.keys.Down):
		m.offset++
	case key.Matches(k, m.keys.Up):
		m.offset = max(0, m.offset-1)
	case key.Matches(k, m.keys.Top):
		m.offset = 0
	}
	return nil
}

// moment is the time shown: the one travelled to, else now.
func (m *Model) moment() time.Time {
	if m.at.IsZero() {
		return m.opts.Now()
	}
	return m.at
}

func (m *Model) goLive() tea.Cmd {
	m.gen++ // whatever travel or search is under way lands nowhere
	m.jumping, m.queued, m.loading = false, nil, false
	if m.at.IsZero() {
		return nil
	}
	m.at, m.past, m.err = time.Time{}, frame{}, nil
	return m.poll.Restart()
}

// travel shows the topology at at (live again when at is in the future).
func (m *Model) travel(at time.Time) tea.Cmd {
	if at.After(m.opts.Now()) {
		return m.goLive()
	}
	m.at, m.loading, m.offset = at.UTC(), true, 0
	m.gen++
	gen, ctx, src := m.gen, m.opts.Context, m.opts.Source
	return func() tea.Msg {
		rr, err := src.ReplicationAt(ctx, at)
		if err != nil {
			return frameMsg{gen: gen, err: err}
		}
		// The events up to the moment shown, newest first (until is exclusive).
		er, err := src.Events(ctx, client.EventsQuery{Until: at.Add(time.Millisecond), Limit: feedSize})
		return frameMsg{gen: gen, frame: frame{at: at, clusters: rr.Clusters, events: er.Events}, err: err}
	}
}

// jump finds the previous (or next) event from the moment shown and travels to it.
func (m *Model) jump(next bool) tea.Cmd {
	if m.jumping { // from where the one under way lands
		m.queued = append(m.queued, next)
		return nil
	}
	from := m.moment()
	m.gen++
	m.loading, m.jumping = true, true
	gen, ctx, src := m.gen, m.opts.Context, m.opts.Source
	return func() tea.Msg {
		if !next {
			er, err := src.Events(ctx, client.EventsQuery{Until: from, Limit: 1})
			if err != nil || len(er.Events) == 0 {
				return jumpMsg{gen: gen, what: "earlier", err: err}
			}
			return jumpMsg{gen: gen, at: er.Events[0].At, ok: true}
		}
		er, err := src.Events(ctx, client.EventsQuery{Since: from.Add(time.Millisecond), Limit: 1000})
		if err != nil || len(er.Events) == 0 {
			return jumpMsg{gen: gen, what: "later", err: err}
		}
		return jumpMsg{gen: gen, at: er.Events[len(er.Events)-1].At, ok: true}
	}
}

// answerTime takes the time prompt's keys: an RFC 3339 time, a clock time today (15:04), or a
// duration ago (10m).
func (m *Model) answerTime(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Cancel):
		m.asking = false
		return nil
	case !key.Matches(k, m.keys.Submit):
		m.prompt.Update(k)
		return nil
	}
	m.asking = false
	at, err := ParseTime(strings.TrimSpace(m.prompt.Value()), m.opts.Now())
	if err != nil {
		m.notice = err.Error()
		return nil
	}
	return m.travel(at)
}

// ParseTime reads what the time prompt takes: an RFC 3339 time, a clock time (15:04 or 15:04:05,
// today, local time; yesterday if that is still to come), or a duration ago (10m, 2h).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if c, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			t := time.Date(now.Year(), now.Month(), now.Day(), c.Hour(), c.Minute(), c.Second(), 0, now.Location())
			if t.After(now) {
				t = t.AddDate(0, 0, -1)
			}
			return t, nil
		}
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want 2026-02-27T15:04:05Z, 15:04 or a duration ago such as 10m", s)
}

// clusterLevel is how a cluster fares: critical with a split brain or without a primary, a warning
// with a member down or Patroni disagreeing with PostgreSQL.
func clusterLevel(c *api.ClusterView) theme.Level {
	switch p := topology.Primaries(&c.Cluster); {
	case c.Split, len(p) == 0:
		return theme.LevelCrit
	case c.Patroni != nil && len(c.Patroni.Disagreements) > 0:
		return theme.LevelWarn
	}
	for _, in := range c.Instances {
		if !in.Up {
			return theme.LevelWarn
		}
	}
	return theme.LevelOK
}
