package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

// runFlags are the flags of `runbook run` and `rollback`.
type runFlags struct {
	src                runbookSource
	env                string
	dryRun             bool
	yes                bool
	confirmDestructive bool
	resume             bool
	runID              string
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	f.src.register(fs)
	fs.StringVar(&f.env, "env", "", "environment: a shipped name ("+strings.Join(runbook.EnvironmentNames(), ", ")+") or a file (default $PGACTL_ENV, else demo)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what each step would run, with variables resolved; run nothing")
	fs.BoolVarP(&f.yes, "yes", "y", false, "non-interactive: confirm manual steps, stop at the first failure")
	fs.BoolVar(&f.confirmDestructive, "confirm-destructive", false, "with --yes: also run destructive steps")
	fs.BoolVar(&f.resume, "resume", false, "continue the latest unfinished run (of TARGET, if given), retrying its failed step")
	fs.StringVar(&f.runID, "run", "", "with --resume: the run to continue (see runbook status --all)")
}

func newRunbookRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [PHASE|PHASE/STEP]",
		Short: "Run a phase or one step (interactive; --yes for scripts; --dry-run to preview)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if target == "" && !f.resume {
				return exitcode.With(exitcode.Usage, errors.New("name a phase or PHASE/STEP to run (pgactl runbook list), or --resume"))
			}
			return runRunbook(cmd, &f, target)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// runRunbook runs, resumes or previews a target; `runbook run` and `rollback` share it.
func runRunbook(cmd *cobra.Command, f *runFlags, target string) error {
	if f.confirmDestructive && !f.yes {
		return exitcode.With(exitcode.Usage, errors.New("--confirm-destructive goes with --yes; interactively, type the step id when asked"))
	}
	if f.runID != "" && !f.resume {
		return exitcode.With(exitcode.Usage, errors.New("--run goes with --resume"))
	}
	if f.resume && f.dryRun {
		return exitcode.With(exitcode.Usage, errors.New("--dry-run previews a new run; it cannot be combined with --resume"))
	}
	var t runbook.Target
	if target != "" {
		var err error
		if t, err = runbook.ParseTarget(target); err != nil {
			return exitcode.With(exitcode.Usage, err)
		}
	}
	store, err := f.src.store()
	if err != nil {
		return err
	}
	var resumed *runbook.RunState
	if f.resume {
		if resumed, err = store.FindResumable(f.runID, target); err != nil {
			return exitcode.With(exitcode.Usage, err)
		}
		if f.src.file != "" {
			if abs, _ := filepath.Abs(f.src.file); abs != resumed.Runbook {
				return exitcode.With(exitcode.Usage, fmt.Errorf("run %s used runbook %s; resume it without --file", resumed.ID, resumed.Runbook))
			}
		}
		f.src.file = resumed.Runbook
		if f.env != "" && f.env != resumed.Env {
			if abs, _ := filepath.Abs(f.env); abs != resumed.Env {
				return exitcode.With(exitcode.Usage, fmt.Errorf("run %s used environment %s; resume it without --env", resumed.ID, resumed.Env))
			}
		}
		f.env = resumed.Env
	}
	rb, err := f.src.runbook()
	if err != nil {
		return err
	}
	if f.yes && !f.confirmDestructive && !f.dryRun {
		if err := refuseDestructive(rb, t, resumed); err != nil {
			return err
		}
	}
	env, err := loadEnv(f.env, store.Dir)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	conf := &stdinConfirmer{in: cmd.InOrStdin(), out: out, yes: f.yes, destructive: f.confirmDestructive}
	eng, err := runbook.NewEngine(rb, env, runbook.Options{
		StateDir:  store.Dir,
		Operator:  runbook.CurrentOperator(),
		Confirmer: conf,
		OnEvent:   func(ev runbook.Event) { printEvent(out, ev) },
		Smoke:     envSmoke{env: env},
	})
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	if f.dryRun {
		return printPlan(cmd.Context(), out, eng, env, t)
	}
	fmt.Fprintf(out, "runbook: %s (%s)\nenvironment: %s", rb.Title, rb.Source, env.Name)
	if env.LoopbackOnly {
		fmt.Fprint(out, " (loopback only)")
	}
	fmt.Fprintf(out, "\nstate: %s\n", store.Dir)
	var st *runbook.RunState
	if resumed != nil {
		fmt.Fprintf(out, "resuming run %s (%s, %s)\n", resumed.ID, resumed.Target, resumed.Status)
		st, err = eng.Resume(cmd.Context(), resumed.ID)
	} else {
		st, err = eng.Run(cmd.Context(), t)
	}
	if st == nil {
		return exitcode.With(exitcode.Usage, err)
	}
	fmt.Fprintf(out, "\nrun %s %s\n", st.ID, st.Status)
	if err == nil {
		return nil
	}
	if st.Resumable() {
		fmt.Fprintf(out, "continue with: pgactl runbook run --resume --run %s\n", st.ID)
	}
	return runExit(err, f.yes)
}

// refuseDestructive stops a --yes run before it starts when a step it would run is destructive, rather
// than half-way through.
func refuseDestructive(rb *runbook.Runbook, t runbook.Target, resumed *runbook.RunState) error {
	refs, err := rb.DestructiveAhead(t, resumed)
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	if len(refs) > 0 {
		return exitcode.With(exitcode.Usage, fmt.Errorf("destructive steps ahead (%s): with --yes, pass --confirm-destructive to run them, or run interactively",
			strings.Join(refs, ", ")))
	}
	return nil
}

// runExit maps a run's error to the exit-code contract.
func runExit(err error, yes bool) error {
	switch {
	case errors.Is(err, runbook.ErrNotConfirmed) && yes:
		return exitcode.With(exitcode.Usage, fmt.Errorf("%w; with --yes, destructive steps also need --confirm-destructive", err))
	case errors.Is(err, runbook.ErrNotConfirmed), errors.Is(err, runbook.ErrNoConfirmer):
		return exitcode.With(exitcode.Usage, err)
	case errors.Is(err, runbook.ErrAuth):
		return exitcode.With(exitcode.Auth, err)
	case errors.Is(err, runbook.ErrUnreachable):
		return exitcode.With(exitcode.Unreachable, err)
	}
	return exitcode.With(exitcode.CheckFailed, err)
}

// printPlan is --dry-run: every step as it would run; configuration problems exit 2.
func printPlan(ctx context.Context, w io.Writer, eng *runbook.Engine, env *runbook.Environment, t runbook.Target) error {
	plan, err := eng.Plan(ctx, t)
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	fmt.Fprintf(w, "dry run of %s in environment %s: nothing is executed\n", t, env.Name)
	if len(env.Commands) > 0 {
		names := make([]string, 0, len(env.Commands))
		for n := range env.Commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "command steps may call the environment's commands: %s\n", strings.Join(names, ", "))
	}
	var unsimulated, broken []string
	for i, ps := range plan {
		fmt.Fprintf(w, "\n[%d/%d] %s/%s  %s (%s)\n", i+1, len(plan), ps.Phase, ps.Step.ID, ps.Step.Title, ps.Step.Kind)
		for _, l := range ps.Would {
			fmt.Fprintf(w, "    %s\n", l)
		}
		ref := ps.Phase + "/" + ps.Step.ID
		if ps.CannotSimulate != "" {
			unsimulated = append(unsimulated, ref+": "+ps.CannotSimulate)
		}
		if ps.Err != nil {
			for _, l := range strings.Split(ps.Err.Error(), "\n") {
				fmt.Fprintf(w, "    PROBLEM: %s\n", l)
			}
			broken = append(broken, ref)
		}
	}
	if len(unsimulated) > 0 {
		fmt.Fprintf(w, "\ncannot simulate %d steps:\n", len(unsimulated))
		for _, u := range unsimulated {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	if len(broken) > 0 {
		return exitcode.With(exitcode.Usage, fmt.Errorf("%d steps cannot run as configured: %s", len(broken), strings.Join(broken, ", ")))
	}
	fmt.Fprintf(w, "\n%d steps ready\n", len(plan))
	return nil
}

// printEvent is the CLI's rendering of the engine's events.
func printEvent(w io.Writer, ev runbook.Event) {
	switch ev.Kind {
	case runbook.EventRunStarted:
		fmt.Fprintf(w, "run %s: %d steps\n", ev.RunID, ev.Total)
	case runbook.EventStepStarted:
		kind := string(ev.Step.Kind)
		if ev.Step.Kind == runbook.KindCheck {
			kind += " " + string(ev.Step.Check)
		}
		if ev.Attempt > 1 {
			kind += fmt.Sprintf(", attempt %d", ev.Attempt)
		}
		fmt.Fprintf(w, "\n[%d/%d] %s/%s  %s (%s)\n", ev.Index, ev.Total, ev.Phase, ev.Step.ID, ev.Step.Title, kind)
	case runbook.EventOutput:
		fmt.Fprintf(w, "    | %s\n", ev.Line)
	case runbook.EventStepFinished:
		switch ev.Status {
		case runbook.StatusSucceeded:
			fmt.Fprintf(w, "    ok (%s)\n", ev.Duration.Round(time.Millisecond))
		case runbook.StatusSkipped:
			fmt.Fprintln(w, "    skipped")
		default:
			fmt.Fprintf(w, "    %s: %v\n", strings.ToUpper(string(ev.Status)), ev.Err)
		}
	}
}
