package widget

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"
)

// Pump runs a producer (a smoke suite, a runbook step, an event stream) in its own goroutine and hands
// its events to the program one at a time: each Event carries the Pump, whose Next command reads the
// following one. Comparing the pump of an event with the current one drops events of a run the view
// has already replaced.
type Pump[T any] struct {
	ch  chan Event[T]
	ctx context.Context
}

// Event is one value of a pump, or its end (Done, with the producer's error).
type Event[T any] struct {
	Pump  *Pump[T]
	Value T
	Done  bool
	Err   error
}

// StartPump returns a command that starts run and delivers its first event; run emits values with
// emit. ctx bounds the delivery only (the console's lifetime): a producer cancelled on its own still
// reports its end. run must stop when its own context, which it closes over, ends.
func StartPump[T any](ctx context.Context, run func(emit func(T)) error) (*Pump[T], tea.Cmd) {
	p := &Pump[T]{ch: make(chan Event[T], 16), ctx: ctx}
	start := func() tea.Msg {
		go func() {
			err := run(func(v T) { p.send(Event[T]{Pump: p, Value: v}) })
			p.send(Event[T]{Pump: p, Done: true, Err: err})
		}()
		return p.Next()()
	}
	return p, start
}

func (p *Pump[T]) send(ev Event[T]) {
	select {
	case p.ch <- ev:
	case <-p.ctx.Done():
	}
}

// Next reads the pump's next event; it yields nothing once the context ends.
func (p *Pump[T]) Next() tea.Cmd {
	return func() tea.Msg {
		select {
		case ev := <-p.ch:
			return ev
		case <-p.ctx.Done():
			// The producer may have finished just before: deliver its end rather than nothing.
			select {
			case ev := <-p.ch:
				return ev
			default:
				return nil
			}
		}
	}
}
