package replication

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// The view is fed two ways. The SSE stream brings each collector's topology as it is pushed; a poll
// of GET /replication at the refresh interval brings the whole picture (stale flags, deregistered
// collectors) and carries the view alone while the stream is down. Each feed retries with backoff.

// pollMsg answers one poll. gen ties it to the poll chain that asked: only the current chain
// schedules the next poll, so "r" and +/- never leave two chains running.
type pollMsg struct {
	gen  int
	resp api.ReplicationResponse
	err  error
}

type pollTickMsg struct{ gen int }

type streamRetryMsg struct{ gen int }

func (m *Model) pollCmd() tea.Cmd {
	ctx, src, gen := m.opts.Context, m.opts.Source, m.pollGen
	return func() tea.Msg {
		resp, err := src.Replication(ctx, "")
		return pollMsg{gen: gen, resp: resp, err: err}
	}
}

func (m *Model) pollTick(d time.Duration) tea.Cmd {
	gen := m.pollGen
	return tea.Tick(d, func(time.Time) tea.Msg { return pollTickMsg{gen: gen} })
}

// openStream starts following the stream. Events reach the view one at a time through a pump, so a
// burst of pushes cannot flood the program's message queue.
func (m *Model) openStream() tea.Cmd {
	ctx, src := m.opts.Context, m.opts.Source
	p, cmd := widget.StartPump(ctx, func(emit func(api.CollectorTopology)) error {
		return src.StreamReplication(ctx, emit)
	})
	m.stream = p
	return cmd
}

func (m *Model) handleFeed(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case pollTickMsg:
		if msg.gen != m.pollGen {
			return nil, true
		}
		if m.paused {
			return m.pollTick(m.refresh()), true
		}
		return m.pollCmd(), true
	case pollMsg:
		return m.onPoll(msg), true
	case widget.Event[api.CollectorTopology]:
		return m.onStreamEvent(msg), true
	case streamRetryMsg:
		if msg.gen != m.streamGen {
			return nil, true
		}
		return m.openStream(), true
	}
	return nil, false
}

func (m *Model) onPoll(msg pollMsg) tea.Cmd {
	current := msg.gen == m.pollGen
	if msg.err != nil {
		if !current {
			return nil
		}
		if m.opts.Context.Err() != nil {
			return nil
		}
		m.lastErr = msg.err
		retry := m.pollBackoff.Next()
		return tea.Batch(conn.Report(conn.SourceReplication, msg.err, retry), m.pollTick(retry))
	}
	m.lastErr = nil
	m.pollBackoff.Reset()
	if m.paused {
		m.heldPoll = &msg.resp
	} else {
		m.state.replaceAll(msg.resp, m.now())
		m.loaded = true
		m.updatedAt = m.now()
		m.dirty = true
	}
	if !current {
		return nil
	}
	return tea.Batch(conn.Report(conn.SourceReplication, nil, 0), m.pollTick(m.refresh()))
}

func (m *Model) onStreamEvent(msg widget.Event[api.CollectorTopology]) tea.Cmd {
	if msg.Pump != m.stream {
		return nil
	}
	if !msg.Done {
		var report tea.Cmd
		if !m.streamLive {
			m.streamLive = true
			m.streamBackoff.Reset()
			report = conn.Report(conn.SourceStream, nil, 0)
		}
		if m.paused {
			m.held[msg.Value.CollectorID] = msg.Value
		} else {
			m.state.applyOne(msg.Value, m.now())
			m.loaded = true
			m.updatedAt = m.now()
			m.dirty = true
		}
		return tea.Batch(report, msg.Pump.Next())
	}
	if m.opts.Context.Err() != nil {
		return nil
	}
	m.streamLive = false
	m.streamErr = msg.Err
	retry := m.streamBackoff.Next()
	m.streamGen++
	gen := m.streamGen
	return tea.Batch(conn.Report(conn.SourceStream, msg.Err, retry),
		tea.Tick(retry, func(time.Time) tea.Msg { return streamRetryMsg{gen: gen} }))
}

// resume applies what arrived while paused and polls at once.
func (m *Model) resume() tea.Cmd {
	m.paused = false
	now := m.now()
	if m.heldPoll != nil {
		m.state.replaceAll(*m.heldPoll, now)
		m.heldPoll = nil
		m.loaded = true
	}
	for id, t := range m.held {
		m.state.applyOne(t, now)
		delete(m.held, id)
		m.loaded = true
	}
	m.dirty = true
	return m.refreshNow()
}

// refreshNow polls immediately and restarts the poll chain.
func (m *Model) refreshNow() tea.Cmd {
	m.pollGen++
	return m.pollCmd()
}
