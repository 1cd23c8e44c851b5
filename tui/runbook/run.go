package runbook

import (
	"context"
	"fmt"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// runEvent is one engine event, or the run's final state (the last value before the pump ends).
type runEvent struct {
	ev    *runbook.Event
	final *runbook.RunState
}

// activeRun is a run in progress.
type activeRun struct {
	target  runbook.Target
	id      string
	pump    *widget.Pump[runEvent]
	cancel  context.CancelFunc
	replies chan runbook.Reply // the engine's Confirm waits on it
	prompt  *runbook.Prompt
	typed   widget.Input
	current *stepState
	ended   bool          // the engine reported the run's end
	done    chan struct{} // closed when the engine returned
}

// confirmer answers the engine's prompts with what the operator chose in the view. The engine emits
// EventWaiting (which opens the prompt) before it calls Confirm.
type confirmer struct{ replies <-chan runbook.Reply }

func (c confirmer) Confirm(ctx context.Context, _ runbook.Prompt) (runbook.Reply, error) {
	select {
	case r := <-c.replies:
		return r, nil
	case <-ctx.Done():
		return runbook.Reply{}, ctx.Err()
	}
}

// start runs target, or resumes the run resumeID when set.
func (m *Model) start(t runbook.Target, resumeID string) tea.Cmd {
	switch {
	case !m.canRun:
		m.notice = "Read-only: running the runbook needs the operator or admin role."
		return nil
	case m.run != nil:
		m.notice = "A run is in progress."
		return nil
	}
	if resumeID == "" {
		// A new run starts its steps from scratch; a resumed one keeps what succeeded.
		for _, st := range m.targetSteps(t) {
			st.status, st.attempts, st.duration, st.err, st.live = runbook.StatusPending, 0, 0, "", true
			st.started = time.Time{}
			st.output = widget.NewRing[string](outputLines)
		}
	}
	ctx, cancel := context.WithCancel(m.opts.Context)
	r := &activeRun{target: t, cancel: cancel, replies: make(chan runbook.Reply, 1), done: make(chan struct{}), id: resumeID}
	runner, c := m.opts.Runner, confirmer{replies: r.replies}
	p, cmd := widget.StartPump(m.opts.Context, func(emit func(runEvent)) error {
		defer close(r.done)
		onEvent := func(ev runbook.Event) { emit(runEvent{ev: &ev}) }
		var st *runbook.RunState
		var err error
		if resumeID != "" {
			st, err = runner.Resume(ctx, resumeID, c, onEvent)
		} else {
			st, err = runner.Run(ctx, t, c, onEvent)
		}
		if st != nil {
			emit(runEvent{final: st})
		}
		return err
	})
	r.pump = p
	m.run = r
	what := "Running " + t.String()
	if resumeID != "" {
		what = "Resuming run " + resumeID
	}
	m.notice = what + "…"
	return cmd
}

func (m *Model) targetSteps(t runbook.Target) []*stepState {
	var out []*stepState
	for _, rw := range m.rows {
		if rw.step != nil && rw.step.phase == t.Phase && (t.Step == "" || rw.step.step.ID == t.Step) {
			out = append(out, rw.step)
		}
	}
	return out
}

func (m *Model) onRunEvent(msg widget.Event[runEvent]) tea.Cmd {
	r := m.run
	if r == nil || msg.Pump != r.pump {
		return nil
	}
	switch {
	case msg.Done:
		m.finish(msg.Err)
		return nil
	case msg.Value.final != nil && r.target.Step == "":
		st := msg.Value.final
		if st.Resumable() {
			m.lastRun[r.target.Phase] = st
		} else {
			delete(m.lastRun, r.target.Phase)
		}
	case msg.Value.ev != nil:
		m.apply(*msg.Value.ev)
	}
	return msg.Pump.Next()
}

// apply folds one engine event into the checklist.
func (m *Model) apply(ev runbook.Event) {
	r := m.run
	if ev.RunID != "" {
		r.id = ev.RunID
	}
	var st *stepState
	if ev.Step != nil {
		st = m.steps[ev.Phase+"/"+ev.Step.ID]
	}
	switch ev.Kind {
	case runbook.EventStepStarted:
		if st == nil {
			return
		}
		st.status, st.attempts, st.started, st.duration, st.err, st.live = runbook.StatusRunning, ev.Attempt, ev.Time, 0, "", true
		r.current = st
		m.follow(st)
	case runbook.EventOutput:
		if st != nil {
			st.output.Push(ev.Line)
		}
	case runbook.EventApproval:
		if st == nil {
			return
		}
		st.status, st.live = runbook.StatusAwaitingApproval, true
		st.output.Push(ev.Line)
		r.current = st
		m.follow(st)
		m.notice = ev.Line
	case runbook.EventWaiting:
		r.prompt = ev.Prompt
		r.typed = widget.Input{Prompt: "> "}
		if st != nil {
			r.current = st
			m.follow(st)
		}
	case runbook.EventStepFinished:
		if st == nil {
			return
		}
		st.status, st.duration, st.live = ev.Status, ev.Duration, true
		st.err = ""
		if ev.Err != nil {
			st.err = ev.Err.Error()
		}
	case runbook.EventRunFinished:
		r.ended = true
		switch {
		case ev.Status == runbook.StatusSucceeded:
			m.notice = fmt.Sprintf("Run %s of %s succeeded.", r.id, r.target)
		case ev.Err != nil:
			m.notice = fmt.Sprintf("Run %s of %s %s: %s", r.id, r.target, ev.Status, ev.Err)
		default:
			m.notice = fmt.Sprintf("Run %s of %s %s.", r.id, r.target, ev.Status)
		}
	}
}

// follow moves the cursor to the step the run is at, so its output is the one shown.
func (m *Model) follow(st *stepState) {
	for i, rw := range m.rows {
		if rw.step == st {
			m.cursor.Index = i
			m.outputScroll = 0
		}
	}
}

func (m *Model) finish(err error) {
	r := m.run
	r.cancel()
	m.run = nil
	// A step the engine left running (interrupted before its end event) is shown as interrupted.
	for _, rw := range m.rows {
		if st := rw.step; st != nil && st.live && st.status == runbook.StatusRunning {
			st.status = runbook.StatusInterrupted
		}
	}
	if err != nil && !r.ended {
		m.notice = fmt.Sprintf("Run of %s could not run: %s", r.target, err)
	}
}

// answer handles a key while the engine waits for the operator.
func (m *Model) answer(k tea.KeyMsg) tea.Cmd {
	r := m.run
	p := r.prompt
	reply := func(d runbook.Decision, typed string) {
		r.replies <- runbook.Reply{Decision: d, Typed: typed}
		r.prompt = nil
	}
	if p.Kind == runbook.PromptDestructive {
		switch {
		case key.Matches(k, m.keys.Cancel):
			reply(runbook.Abort, "")
		case key.Matches(k, m.keys.Submit):
			if r.typed.Value() == p.Step.ID {
				reply(runbook.Proceed, r.typed.Value())
			}
		default:
			r.typed.Update(k)
		}
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Confirm):
		reply(runbook.Proceed, "")
	case key.Matches(k, m.keys.SkipStep):
		reply(runbook.Skip, "")
	case key.Matches(k, m.keys.Abort):
		reply(runbook.Abort, "")
	}
	return nil
}

func (m *Model) promptKeys() []key.Binding {
	if m.run.prompt.Kind == runbook.PromptDestructive {
		return []key.Binding{withHelp(m.keys.Submit, "run it"), withHelp(m.keys.Cancel, "abort run")}
	}
	yes := "done"
	if m.run.prompt.Kind == runbook.PromptFailed {
		yes = "retry"
	}
	return []key.Binding{withHelp(m.keys.Confirm, yes), m.keys.SkipStep, m.keys.Abort}
}

// Wait blocks until a run in progress has stopped (after the console's context was cancelled) or
// timeout passes, so the run's state is saved as interrupted before the process exits.
func (m *Model) Wait(timeout time.Duration) {
	if m.run == nil {
		return
	}
	select {
	case <-m.run.done:
	case <-time.After(timeout):
	}
}
