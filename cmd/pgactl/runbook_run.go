package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/cmd/pgactl/internal/runbookcli"
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
	breakGlass         string
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	f.src.registerFile(fs)
	f.src.registerRuns(fs)
	fs.StringVar(&f.env, "env", "", "environment: a shipped name ("+strings.Join(runbook.EnvironmentNames(), ", ")+") or a file (default $PGACTL_ENV, else demo)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what each step would run, with variables resolved; run nothing")
	fs.BoolVarP(&f.yes, "yes", "y", false, "non-interactive: confirm manual steps, stop at the first failure")
	fs.BoolVar(&f.confirmDestructive, "confirm-destructive", false, "with --yes: also run destructive steps")
	fs.BoolVar(&f.resume, "resume", false, "continue the latest unfinished run (of TARGET, if given), retrying its failed step")
	fs.StringVar(&f.runID, "run", "", "with --resume: the run to continue (see runbook status --all)")
	fs.StringVar(&f.breakGlass, "break-glass", "", "with --local: run steps that need approval without it, for this reason (recorded in the audit log and the report)")
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
	if f.breakGlass != "" && !f.src.local {
		return exitcode.With(exitcode.Usage, errors.New("--break-glass is for --local runs: a shared run takes its approvals on the API"))
	}
	if f.dryRun {
		f.src.local = true // a preview records nothing
	}
	runs, store, operator, err := f.src.runs(cmd, f.env)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var resumed *runbook.RunState
	if f.resume {
		if resumed, err = runbook.FindResumable(ctx, runs, f.runID, target); err != nil {
			return exitcode.With(exitcode.Usage, err)
		}
		if resumed.Lease != nil {
			return exitcode.With(exitcode.Usage, fmt.Errorf("run %s is being executed: %s", resumed.ID, runbookcli.Executor(resumed.Lease)))
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
	conf := &runbookcli.Confirmer{In: cmd.InOrStdin(), Out: out, Yes: f.yes, Destructive: f.confirmDestructive}
	eng, err := runbook.NewEngine(rb, env, runbook.Options{
		StateDir:   store.Dir,
		Runs:       runs,
		BreakGlass: f.breakGlass,
		Operator:   operator,
		Confirmer:  conf,
		OnEvent:    func(ev runbook.Event) { runbookcli.PrintEvent(out, ev) },
		Smoke:      envSmoke{env: env},
	})
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	if f.dryRun {
		return runbookcli.PrintPlan(cmd.Context(), out, eng, env, t)
	}
	fmt.Fprintf(out, "runbook: %s (%s)\nenvironment: %s", rb.Title, rb.Source, env.Name)
	if env.LoopbackOnly {
		fmt.Fprint(out, " (loopback only)")
	}
	fmt.Fprintf(out, "\nruns: %s", runs.Location())
	if f.src.local {
		fmt.Fprint(out, " (local run: nobody else sees it, approvals cannot be given)")
	}
	fmt.Fprintln(out)
	var st *runbook.RunState
	if resumed != nil {
		fmt.Fprintf(out, "resuming run %s (%s, %s)\n", resumed.ID, resumed.Target, resumed.Status)
		st, err = eng.Resume(ctx, resumed.ID)
	} else {
		st, err = eng.Run(ctx, t)
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
