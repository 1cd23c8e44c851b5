// Package runbook is the executable deployment runbook: a TOML model of phases and steps (the
// shipped one is the v3.2.0 deployment plan), environment files that supply its variables and
// service commands, and an engine that runs a phase or a step, persists its state after every step
// (resume after a crash or a quit) and appends a JSON-lines audit log.
//
// The engine never writes to a terminal and never reads one: it reports Events to a callback and
// asks the operator through a Confirmer the caller implements (the CLI with a stdin prompt, the TUI
// with a dialog). A caller drives it like this:
//
//	rb, err := runbook.Load("")                               // the shipped runbook, or a file path
//	env, err := runbook.LoadEnvironment("demo", stateDir)     // shipped name or file path
//	eng, err := runbook.NewEngine(rb, env, runbook.Options{
//		StateDir:  stateDir,
//		Confirmer: myConfirmer,                               // answers Prompts
//		OnEvent:   func(ev runbook.Event) { program.Send(ev) }, // called in order, one at a time
//		Smoke:     suite,                                     // for the "smoke" check; optional
//	})
//	target, err := runbook.ParseTarget("staging")             // or "staging/health"
//	st, err := eng.Run(ctx, target)                           // blocks until the run ends
//	st, err = eng.Resume(ctx, st.ID)                          // continue an unfinished run
//	plan, err := eng.Plan(ctx, target)                        // dry run: what would run, nothing runs
//
// Run and Resume block; call them from a goroutine in an interactive program. Cancelling ctx
// interrupts the run: the running command's whole process group is stopped, the step is recorded as
// interrupted and Resume runs it again. Events arrive from the engine's goroutine (output lines from
// the goroutine reading the command), never concurrently. Per step they are EventStepStarted (for
// each attempt), EventOutput lines, EventWaiting when a Prompt is put to the Confirmer, then
// EventStepFinished; a run is framed by EventRunStarted and EventRunFinished.
//
// Prompts: PromptManual (Proceed = done, Skip, Abort), PromptDestructive before a destructive step
// runs (Proceed only counts when Reply.Typed equals the step's ID, else the run stops with
// ErrNotConfirmed), PromptFailed after a step failed and used up its automatic retries (Proceed =
// retry, Skip, Abort). Without a Confirmer a manual or destructive step stops the run with
// ErrNoConfirmer and a failure is final.
//
// A run's error says why it did not succeed: errors.Is with ErrStepFailed (plus ErrUnreachable or
// ErrAuth when that was the cause), ErrAborted, ErrNotConfirmed, ErrNoConfirmer, or ctx's error.
// Store reads runs back (List, Latest, Load, ReadAudit) for status and log views; RunState and
// AuditRecord never hold a secret value: every value the environment marks secret is replaced by
// Redacted in output, errors, state and audit log.
//
// The format, the environment files and the commands are documented in docs/runbook.md.
package runbook
