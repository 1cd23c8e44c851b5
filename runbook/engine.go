package runbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/internal/wait"
)

// Options configures an Engine; every field is optional.
type Options struct {
	StateDir string   // local state (watches, run directories, local runs); default DefaultStateDir()
	Runs     RunStore // where runs are kept; default the local state directory (&Store{Dir: StateDir})
	// BreakGlass, when set, is why a step that needs approval runs without it: only for a local run
	// (the API is down), recorded in the run's audit log and report.
	BreakGlass string
	Operator   string      // who runs it, for the audit log; default CurrentOperator()
	Confirmer  Confirmer   // answers prompts; nil: a manual or destructive step stops the run, a failure is final
	OnEvent    func(Event) // receives every event synchronously, one at a time, in order; must not block long
	Smoke      SmokeSuite  // runs the check "smoke"; nil: that check fails with "smoke suite not wired"
}

// Engine runs the steps of one runbook in one environment. It is safe to run one run at a time per
// Engine; create one Engine per concurrent run.
type Engine struct {
	rb        *Runbook
	env       *Environment
	opts      Options
	store     *Store   // local state
	runs      RunStore // where runs are kept
	killGrace time.Duration
	emitMu    sync.Mutex
}

// NewEngine prepares an engine; it does no I/O.
func NewEngine(rb *Runbook, env *Environment, opts Options) (*Engine, error) {
	if rb == nil || env == nil {
		return nil, errors.New("runbook engine: runbook and environment are required")
	}
	if opts.StateDir == "" {
		dir, err := DefaultStateDir()
		if err != nil {
			return nil, err
		}
		opts.StateDir = dir
	}
	if opts.Operator == "" {
		opts.Operator = CurrentOperator()
	}
	e := &Engine{rb: rb, env: env, opts: opts, store: &Store{Dir: opts.StateDir}, runs: opts.Runs, killGrace: defaultKillGrace}
	if e.runs == nil {
		e.runs = e.store
	}
	return e, nil
}

// Store is the engine's local state directory (watches, run directories).
func (e *Engine) Store() *Store { return e.store }

// Runs is where the engine keeps its runs.
func (e *Engine) Runs() RunStore { return e.runs }

// run is a run being executed by this process.
type run struct {
	state *RunState
	steps []*Step
	lease RunLease
	// pctx persists the run: not cancelled with the run, so that an interrupted run is recorded.
	pctx context.Context
}

func (r *run) save() error                  { return r.lease.Save(r.pctx, r.state) }
func (r *run) record(rec AuditRecord) error { return r.lease.Append(r.pctx, rec) }

// Run starts a new run of a phase or of one step and executes it. It returns the final state
// (also when it fails) and an error when the run did not succeed: a step failure (ErrStepFailed,
// possibly with ErrUnreachable or ErrAuth), the operator's abort (ErrAborted, ErrNotConfirmed,
// ErrNoConfirmer) or ctx's error when interrupted. The state is persisted after every step.
func (e *Engine) Run(ctx context.Context, t Target) (*RunState, error) {
	phase, steps, err := e.rb.Select(t)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	st := &RunState{
		Runbook: e.rb.Source, Title: e.rb.Title, Env: e.env.Name, Target: t.String(),
		Operator: e.opts.Operator, Status: StatusRunning, StartedAt: now, UpdatedAt: now,
	}
	for _, s := range steps {
		st.Steps = append(st.Steps, StepState{Phase: phase.ID, Step: s.ID, Title: s.Title, Kind: s.Kind,
			Destructive: s.Destructive, Approve: s.Approve, Status: StatusPending})
	}
	lease, err := e.runs.Create(ctx, st)
	if err != nil {
		return nil, err
	}
	r := &run{state: st, steps: steps, lease: lease, pctx: context.WithoutCancel(ctx)}
	cmds := make(map[string]string, len(e.env.Commands))
	for k, v := range e.env.Commands {
		cmds[k] = e.env.Redact(v)
	}
	if err := r.record(AuditRecord{Time: now, Run: st.ID, Event: AuditRunStarted, Who: e.opts.Operator,
		Runbook: e.rb.Source, Env: e.env.Name, Target: st.Target, Commands: cmds}); err != nil {
		lease.Release()
		return nil, err
	}
	return e.execute(ctx, r)
}

// Resume continues a run that did not succeed: steps already succeeded or skipped are kept, the
// failed or interrupted step runs again, then the rest. The engine must have been built with the
// run's runbook and environment (RunState.Runbook, RunState.Env).
func (e *Engine) Resume(ctx context.Context, runID string) (*RunState, error) {
	st, err := e.runs.Load(ctx, runID)
	if err != nil {
		return nil, err
	}
	if !st.Resumable() {
		return st, fmt.Errorf("run %s already succeeded; start a new run", runID)
	}
	if st.Runbook != e.rb.Source {
		return st, fmt.Errorf("run %s used runbook %s, not %s", runID, st.Runbook, e.rb.Source)
	}
	if st.Env != e.env.Name {
		return st, fmt.Errorf("run %s used environment %s, not %s", runID, st.Env, e.env.Name)
	}
	st, lease, err := e.runs.Acquire(ctx, runID)
	if err != nil {
		return st, err
	}
	release := true
	defer func() {
		if release {
			lease.Release()
		}
	}()
	steps := make([]*Step, len(st.Steps))
	for i, ss := range st.Steps {
		p, ok := e.rb.Phase(ss.Phase)
		var s *Step
		if ok {
			s, ok = p.Step(ss.Step)
		}
		if !ok {
			return st, fmt.Errorf("run %s: step %s/%s is no longer in the runbook; start a new run", runID, ss.Phase, ss.Step)
		}
		steps[i] = s
	}
	r := &run{state: st, steps: steps, lease: lease, pctx: context.WithoutCancel(ctx)}
	now := time.Now().UTC()
	st.Status, st.Error, st.FinishedAt, st.UpdatedAt = StatusRunning, "", time.Time{}, now
	st.Lease, st.StartedBy = nil, ""
	if err := r.save(); err != nil {
		return st, err
	}
	if err := r.record(AuditRecord{Time: now, Run: runID, Event: AuditRunResumed, Who: e.opts.Operator,
		Runbook: e.rb.Source, Env: e.env.Name, Target: st.Target}); err != nil {
		return st, err
	}
	release = false
	return e.execute(ctx, r)
}

func (e *Engine) execute(ctx context.Context, r *run) (*RunState, error) {
	defer r.lease.Release()
	e.emit(Event{Kind: EventRunStarted, RunID: r.state.ID, Total: len(r.steps)})
	var runErr error
	for i := range r.steps {
		if ss := r.state.Steps[i]; ss.Status == StatusSucceeded || ss.Status == StatusSkipped {
			continue
		}
		if runErr = e.step(ctx, r, i); runErr != nil {
			break
		}
	}
	st := r.state
	switch {
	case runErr == nil:
		st.Status = StatusSucceeded
	case ctx.Err() != nil:
		st.Status = StatusInterrupted
	case errors.Is(runErr, ErrAborted), errors.Is(runErr, ErrNotConfirmed), errors.Is(runErr, ErrNoConfirmer),
		errors.Is(runErr, ErrRejected), errors.Is(runErr, ErrApprovalNeedsShared):
		st.Status = StatusAborted
	default:
		st.Status = StatusFailed
	}
	for i := range st.Steps {
		if st.Steps[i].Status == StatusAwaitingApproval {
			st.Steps[i].Status = StatusPending // asked again on resume
		}
	}
	now := time.Now().UTC()
	st.UpdatedAt, st.FinishedAt = now, now
	if runErr != nil {
		st.Error = e.env.Redact(runErr.Error())
		runErr = &redactedError{msg: st.Error, errs: []error{runErr}}
	}
	saveErr := r.save()
	auditErr := r.record(AuditRecord{Time: now, Run: st.ID, Event: AuditRunFinished, Who: e.opts.Operator,
		Status: st.Status, Error: st.Error})
	e.emit(Event{Kind: EventRunFinished, RunID: st.ID, Total: len(r.steps), Status: st.Status, Err: runErr})
	return st, errors.Join(runErr, saveErr, auditErr)
}

// step runs one step to its end: confirmation, attempts with automatic retries, and the operator's
// decision after a failure. A nil return means the run goes on (the step succeeded or was skipped).
func (e *Engine) step(ctx context.Context, r *run, i int) error {
	s := r.steps[i]
	ref := r.state.Steps[i].Phase + "/" + s.ID
	if s.approvalNeeded() {
		if err := e.approval(ctx, r, i); err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
	}
	if s.Kind == KindManual {
		start := time.Now().UTC()
		e.emit(e.stepEvent(r, i, EventStepStarted))
		reply, err := e.ask(ctx, r, i, PromptManual, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		switch reply.Decision {
		case Proceed:
			return e.settle(r, i, StatusSucceeded, start, "done, confirmed by "+e.opts.Operator)
		case Skip:
			return e.settle(r, i, StatusSkipped, start, "skipped by "+e.opts.Operator)
		}
		return fmt.Errorf("%s: %w", ref, ErrAborted)
	}
	if s.Destructive {
		start := time.Now().UTC()
		reply, err := e.ask(ctx, r, i, PromptDestructive, nil)
		if err != nil {
			return fmt.Errorf("%s: destructive step: %w", ref, err)
		}
		switch reply.Decision {
		case Proceed:
			if reply.Typed != s.ID {
				return fmt.Errorf("%s: %w (type the step id %q to run it)", ref, ErrNotConfirmed, s.ID)
			}
		case Skip:
			return e.settle(r, i, StatusSkipped, start, "destructive step skipped by "+e.opts.Operator)
		default:
			return fmt.Errorf("%s: %w", ref, ErrAborted)
		}
	}
	for {
		var err error
		for a := 0; a <= s.Retries; a++ {
			if a > 0 {
				delay := s.effectiveRetryDelay()
				ev := e.stepEvent(r, i, EventOutput)
				ev.Line = fmt.Sprintf("retrying in %s (automatic retry %d of %d)", delay, a, s.Retries)
				e.emit(ev)
				if werr := sleep(ctx, delay); werr != nil {
					return fmt.Errorf("%s: %w", ref, werr)
				}
			}
			var persistErr error
			err, persistErr = e.attempt(ctx, r, i)
			switch {
			case persistErr != nil:
				// Without its state and audit trail the run cannot go on, nor the step be retried safely.
				return errors.Join(err, persistErr)
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return err
			}
		}
		reply, perr := e.ask(ctx, r, i, PromptFailed, err)
		switch {
		case errors.Is(perr, ErrNoConfirmer):
			return err // nobody to ask: the failure stands
		case perr != nil:
			return fmt.Errorf("%s: %w", ref, perr)
		}
		switch reply.Decision {
		case Proceed:
			continue
		case Skip:
			return e.settle(r, i, StatusSkipped, time.Now().UTC(), "failed step skipped by "+e.opts.Operator)
		}
		return err
	}
}

// attempt executes a step once, persisting the state before and after and auditing the result.
// stepErr is the step's failure; persistErr a failure to record it, which must stop the run.
func (e *Engine) attempt(ctx context.Context, r *run, i int) (stepErr, persistErr error) {
	s, ss := r.steps[i], &r.state.Steps[i]
	start := time.Now().UTC()
	ss.Attempts++
	ss.Status, ss.StartedAt, ss.EndedAt, ss.ExitCode, ss.Error = StatusRunning, start, time.Time{}, nil, ""
	r.state.UpdatedAt = start
	if err := r.save(); err != nil {
		return nil, err
	}
	ev := e.stepEvent(r, i, EventStepStarted)
	e.emit(ev)

	out := newLineWriter(e.env.Redact, func(line string) {
		o := e.stepEvent(r, i, EventOutput)
		o.Line = line
		e.emit(o)
	})
	timeout := s.EffectiveTimeout()
	stepCtx, cancel := context.WithTimeout(ctx, timeout)
	exitCode, err := e.exec(stepCtx, r, s, out)
	timedOut := errors.Is(stepCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	out.flush()
	if err != nil && timedOut {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}

	end := time.Now().UTC()
	status := StatusSucceeded
	switch {
	case err != nil && ctx.Err() != nil:
		status = StatusInterrupted
		err = fmt.Errorf("interrupted: %w", errors.Join(ctx.Err(), err))
	case err != nil:
		status = StatusFailed
	}
	if err != nil {
		stepErr = &redactedError{
			msg:  ss.Phase + "/" + s.ID + ": " + e.env.Redact(err.Error()),
			errs: []error{ErrStepFailed, err},
		}
		ss.Error = e.env.Redact(err.Error())
	}
	ss.Status, ss.EndedAt, ss.ExitCode = status, end, exitCode
	r.state.UpdatedAt = end
	auditErr := r.record(AuditRecord{Time: end, Run: r.state.ID, Event: AuditStep, Who: e.opts.Operator,
		Phase: ss.Phase, Step: s.ID, Kind: s.Kind, Attempt: ss.Attempts, Command: auditCommand(s),
		ExitCode: exitCode, Status: status, Start: start, End: end, Output: out.captured(), Error: ss.Error})
	saveErr := r.save()

	fin := e.stepEvent(r, i, EventStepFinished)
	fin.Status, fin.Err, fin.Duration = status, stepErr, end.Sub(start)
	e.emit(fin)
	return stepErr, errors.Join(auditErr, saveErr)
}

// settle records a step that ends without executing anything: a manual step done, or a skip.
func (e *Engine) settle(r *run, i int, status Status, start time.Time, note string) error {
	s, ss := r.steps[i], &r.state.Steps[i]
	end := time.Now().UTC()
	if ss.StartedAt.IsZero() {
		ss.StartedAt = start
	}
	ss.Status, ss.EndedAt = status, end
	if status == StatusSucceeded {
		ss.Error = ""
	}
	r.state.UpdatedAt = end
	if err := r.record(AuditRecord{Time: end, Run: r.state.ID, Event: AuditStep, Who: e.opts.Operator,
		Phase: ss.Phase, Step: s.ID, Kind: s.Kind, Status: status, Start: start, End: end, Output: note}); err != nil {
		return err
	}
	if err := r.save(); err != nil {
		return err
	}
	fin := e.stepEvent(r, i, EventStepFinished)
	fin.Status, fin.Duration = status, end.Sub(start)
	e.emit(fin)
	return nil
}

// ask puts a question to the Confirmer and audits the answer.
func (e *Engine) ask(ctx context.Context, r *run, i int, kind PromptKind, cause error) (Reply, error) {
	s, ss := r.steps[i], &r.state.Steps[i]
	if e.opts.Confirmer == nil {
		return Reply{}, fmt.Errorf("%w: %s step needs a confirmation", ErrNoConfirmer, kind)
	}
	p := &Prompt{Kind: kind, RunID: r.state.ID, Phase: ss.Phase, Step: s, Attempt: ss.Attempts, Err: cause}
	ev := e.stepEvent(r, i, EventWaiting)
	ev.Prompt = p
	e.emit(ev)
	reply, err := e.opts.Confirmer.Confirm(ctx, *p)
	if err != nil {
		return Reply{}, err
	}
	if reply.Decision != Proceed && reply.Decision != Skip {
		reply.Decision = Abort
	}
	decision := reply.Decision.String()
	if kind == PromptDestructive && reply.Decision == Proceed && reply.Typed != s.ID {
		decision = "refused: typed text does not match the step id"
	}
	if err := r.record(AuditRecord{Time: time.Now().UTC(), Run: r.state.ID, Event: AuditConfirmation,
		Who: e.opts.Operator, Phase: ss.Phase, Step: s.ID, Kind: s.Kind, Prompt: kind.String(), Decision: decision}); err != nil {
		return Reply{}, err
	}
	return reply, nil
}

func (e *Engine) stepEvent(r *run, i int, kind EventKind) Event {
	return Event{Kind: kind, RunID: r.state.ID, Phase: r.state.Steps[i].Phase, Step: r.steps[i],
		Index: i + 1, Total: len(r.steps), Attempt: r.state.Steps[i].Attempts}
}

func (e *Engine) emit(ev Event) {
	if e.opts.OnEvent == nil {
		return
	}
	ev.Time = time.Now()
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.opts.OnEvent(ev)
}

// exec runs one attempt of an automated step; exitCode is set for command steps.
func (e *Engine) exec(ctx context.Context, r *run, s *Step, out *lineWriter) (exitCode *int, err error) {
	switch s.Kind {
	case KindCommand:
		code, err := e.runCommand(ctx, r.state.ID, s, nil, out)
		return &code, err
	case KindRolling:
		return nil, e.runRolling(ctx, r.state.ID, s, out)
	case KindSQL:
		return nil, e.runSQL(ctx, s, out)
	case KindCheck:
		return nil, e.runCheck(ctx, s, out)
	}
	return nil, fmt.Errorf("step kind %q cannot be executed", s.Kind)
}

// auditCommand is what the audit log records as the step's command: the runbook's own text, with
// ${NAME} references unexpanded so that no secret value is written.
func auditCommand(s *Step) string {
	switch s.Kind {
	case KindCommand:
		return s.Run
	case KindRolling:
		return "for each of " + s.Servers + ":\n" + s.Run
	case KindSQL:
		cmd := "-- database " + s.databaseRef() + "\n" + s.SQL
		if len(s.Params) > 0 {
			cmd += "\n-- params " + strings.Join(s.Params, ", ")
		}
		return cmd
	case KindCheck:
		return "check " + string(s.Check) + checkArgs(s)
	}
	return ""
}

// checkArgs lists a check's parameters as written (references unexpanded).
func checkArgs(s *Step) string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + "=" + v)
		}
	}
	add("url", s.URL)
	if s.Check == CheckPostgres || s.Check == CheckPgMonitor {
		add("database", s.databaseRef())
	}
	add("role", s.Role)
	add("name", s.Name)
	add("hostname", s.Hostname)
	add("username", s.Username)
	add("secret", s.Secret)
	add("password", s.Password)
	if len(s.Headers) > 0 {
		add("headers", strings.Join(s.Headers, "; "))
	}
	if s.MinDays > 0 {
		add("min_days", fmt.Sprint(s.MinDays))
	}
	return b.String()
}

// redactedError carries a message with secrets removed while keeping its causes for errors.Is.
type redactedError struct {
	msg  string
	errs []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.errs }

// classified marks an error as one of the sentinel causes (ErrUnreachable, ErrAuth) without changing
// its message.
type classified struct {
	kind error
	err  error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }

func sleep(ctx context.Context, d time.Duration) error {
	if !wait.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}
