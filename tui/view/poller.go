package view

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/tui/conn"
)

// Poller fetches one API resource for a view again and again: at the view's interval while the API
// answers, after a doubling backoff while it fails, reporting each outcome to the shell. Each fetch
// and timer carries the generation of the chain that started it and only the current chain
// schedules the next fetch, so a manual refresh (Restart) never leaves two chains running.
type Poller[T any] struct {
	// Hold, when set and true, postpones a due fetch by another interval (a paused view).
	Hold func() bool

	ctx     context.Context
	source  string
	fetch   func(context.Context) (T, error)
	gen     int
	backoff backoff.Backoff
	err     error
}

// answer is the outcome of one fetch of the chain gen. Like due, it names its poller: the shell hands
// every message to every view.
type answer[T any] struct {
	p     *Poller[T]
	gen   int
	value T
	err   error
}

// due is a timer of the chain gen going off.
type due[T any] struct {
	p   *Poller[T]
	gen int
}

// NewPoller polls fetch; ctx bounds every request and source names the feed in the connection
// reports (one of conn.Source*).
func NewPoller[T any](ctx context.Context, source string, fetch func(context.Context) (T, error)) *Poller[T] {
	return &Poller[T]{ctx: ctx, source: source, fetch: fetch, backoff: backoff.Backoff{Min: time.Second, Max: 30 * time.Second}}
}

// Fetch fetches now, in the current chain.
func (p *Poller[T]) Fetch() tea.Cmd {
	ctx, fetch, gen := p.ctx, p.fetch, p.gen
	return func() tea.Msg {
		v, err := fetch(ctx)
		return answer[T]{p: p, gen: gen, value: v, err: err}
	}
}

// Restart starts a new chain with a fetch now; what the old chain still brings schedules nothing.
func (p *Poller[T]) Restart() tea.Cmd {
	p.gen++
	return p.Fetch()
}

// Err is the latest failure, nil again once a fetch succeeds.
func (p *Poller[T]) Err() error { return p.err }

func (p *Poller[T]) after(d time.Duration) tea.Cmd {
	gen := p.gen
	return tea.Tick(d, func(time.Time) tea.Msg { return due[T]{p: p, gen: gen} })
}

// Update handles msg when it is one of the poller's own, and reports whether it was. A successful
// answer goes to got, even from an older chain (its data is no less true); an answer of the current
// chain is reported to the shell and schedules the next fetch, after every or, when it failed, after
// the backoff.
func (p *Poller[T]) Update(msg tea.Msg, every time.Duration, got func(T)) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case due[T]:
		switch {
		case msg.p != p:
			return nil, false
		case msg.gen != p.gen:
			return nil, true
		case p.Hold != nil && p.Hold():
			return p.after(every), true
		}
		return p.Fetch(), true
	case answer[T]:
		if msg.p != p {
			return nil, false
		}
		return p.answered(msg, every, got), true
	}
	return nil, false
}

func (p *Poller[T]) answered(msg answer[T], every time.Duration, got func(T)) tea.Cmd {
	current := msg.gen == p.gen
	if msg.err != nil {
		if !current || p.ctx.Err() != nil { // replaced, or the console is quitting
			return nil
		}
		p.err = msg.err
		retry := p.backoff.Next()
		return tea.Batch(conn.Report(p.source, msg.err, retry), p.after(retry))
	}
	p.err = nil
	p.backoff.Reset()
	got(msg.value)
	if !current {
		return nil
	}
	return tea.Batch(conn.Report(p.source, nil, 0), p.after(every))
}
