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

type streamRetryMsg struct{ gen int }

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
	if cmd, ok := m.poll.Update(msg, m.refresh(), m.onPoll); ok {
		return cmd, true
	}
	switch msg := msg.(type) {
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

// onPoll takes a poll's answer: the whole picture, held while paused.
func (m *Model) onPoll(resp api.ReplicationResponse) {
	if m.paused {
		m.heldPoll = &resp
		return
	}
	m.state.replaceAll(resp, m.now())
	m.loaded = true
	m.updatedAt = m.now()
	m.dirty = true
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
	return m.poll.Restart()
}
