package runbook

import (
	"context"
	"errors"
	"io"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds, in the order a step produces them.
const (
	EventRunStarted   EventKind = iota + 1 // a run started or resumed
	EventStepStarted                       // an attempt of a step started (manual steps: waiting for the operator)
	EventOutput                            // one line of a step's output (Line)
	EventWaiting                           // the engine waits for the Confirmer (Prompt)
	EventStepFinished                      // a step ended (Status, Err, Duration)
	EventRunFinished                       // the run ended (Status, Err)
	EventApproval                          // a step waits for its approvers (Line says whom, and how to approve)
)

func (k EventKind) String() string {
	switch k {
	case EventRunStarted:
		return "run-started"
	case EventStepStarted:
		return "step-started"
	case EventOutput:
		return "output"
	case EventWaiting:
		return "waiting"
	case EventStepFinished:
		return "step-finished"
	case EventRunFinished:
		return "run-finished"
	case EventApproval:
		return "approval"
	}
	return "unknown"
}

// Event is what the engine reports while it runs. The engine never writes to a terminal; the CLI
// prints events, the TUI renders them. Secrets are redacted from Line and Err.
type Event struct {
	Kind  EventKind
	Time  time.Time
	RunID string
	Phase string // phase ID; set on step events
	Step  *Step  // the runbook's step; nil on run events
	Index int    // 1-based position of the step in the run
	Total int    // number of steps in the run

	Attempt  int           // EventStepStarted, EventStepFinished
	Line     string        // EventOutput
	Prompt   *Prompt       // EventWaiting
	Status   Status        // EventStepFinished: succeeded, failed, skipped, interrupted; EventRunFinished: the run's
	Err      error         // why a step or run did not succeed
	Duration time.Duration // EventStepFinished: how long the attempt took
}

// PromptKind says what the engine asks.
type PromptKind int

// Prompt kinds and the decisions each accepts.
const (
	// PromptManual: a manual step; Proceed means the operator did it, Skip skips it, Abort stops the run.
	PromptManual PromptKind = iota + 1
	// PromptDestructive: before a destructive step runs; Proceed runs it only if Reply.Typed equals the
	// step's ID (anything else stops the run with ErrNotConfirmed), Skip skips it, Abort stops the run.
	PromptDestructive
	// PromptFailed: a step failed (after its automatic retries); Proceed retries it, Skip skips it,
	// Abort stops the run as failed.
	PromptFailed
)

func (k PromptKind) String() string {
	switch k {
	case PromptManual:
		return "manual"
	case PromptDestructive:
		return "destructive"
	case PromptFailed:
		return "failed"
	}
	return "unknown"
}

// Prompt is a question for the operator.
type Prompt struct {
	Kind    PromptKind
	RunID   string
	Phase   string
	Step    *Step
	Attempt int   // attempts made so far
	Err     error // PromptFailed: why the last attempt failed (redacted)
}

// Decision is the operator's answer. The zero value counts as Abort.
type Decision int

// Decisions.
const (
	Proceed Decision = iota + 1
	Skip
	Abort
)

func (d Decision) String() string {
	switch d {
	case Proceed:
		return "proceed"
	case Skip:
		return "skip"
	}
	return "abort"
}

// Reply answers a Prompt.
type Reply struct {
	Decision Decision
	Typed    string // PromptDestructive: what the operator typed; must equal the step's ID
}

// Confirmer asks the operator. The CLI implements it with a stdin prompt, the TUI with a dialog.
// Confirm is called from the goroutine running the engine and may block until the operator answers;
// it must return promptly with ctx.Err() when ctx is done.
type Confirmer interface {
	Confirm(ctx context.Context, p Prompt) (Reply, error)
}

// ConfirmerFunc adapts a function to Confirmer.
type ConfirmerFunc func(ctx context.Context, p Prompt) (Reply, error)

// Confirm calls f.
func (f ConfirmerFunc) Confirm(ctx context.Context, p Prompt) (Reply, error) { return f(ctx, p) }

// SmokeSuite is the smoke test suite, run by the check "smoke". Run writes its report to w (one check
// per line is best) and returns how many checks failed; err is for a suite that could not run.
type SmokeSuite interface {
	// Run runs the checks named in only (all of them when only is empty).
	Run(ctx context.Context, w io.Writer, only []string) (failed int, err error)
}

// Errors a run can end with; test with errors.Is. A failing step's error also wraps ErrUnreachable
// or ErrAuth when that is the cause, so callers can choose an exit code.
var (
	ErrStepFailed   = errors.New("step failed")
	ErrAborted      = errors.New("run aborted by the operator")
	ErrNotConfirmed = errors.New("destructive step not confirmed")
	ErrUnreachable  = errors.New("target unreachable")
	ErrAuth         = errors.New("authentication failed")
	ErrNoConfirmer  = errors.New("no operator to ask")
	// ErrLeaseLost: another operator took over the run (its lease expired); this process stopped.
	ErrLeaseLost = errors.New("run taken over by another operator")
)
