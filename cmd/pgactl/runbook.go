package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/smoke"
)

// runbookSource is where a command reads its runbook and state from.
type runbookSource struct {
	file     string // runbook file; "" for the shipped one
	stateDir string
}

func (s *runbookSource) register(fs *pflag.FlagSet) {
	s.registerFile(fs)
	s.registerState(fs)
}

func (s *runbookSource) registerFile(fs *pflag.FlagSet) {
	fs.StringVarP(&s.file, "file", "f", "", "runbook file (default: the shipped v3.2.0 deployment runbook)")
}

func (s *runbookSource) registerState(fs *pflag.FlagSet) {
	fs.StringVar(&s.stateDir, "state-dir", "", "state directory for runs (default $PGACTL_STATE_DIR, else $XDG_STATE_HOME/pgactl or ~/.local/state/pgactl)")
}

func (s *runbookSource) runbook() (*runbook.Runbook, error) {
	path := s.file
	if path != "" && path != runbook.DefaultSource {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, err)
		}
		path = abs
	}
	rb, err := runbook.Load(path)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return rb, nil
}

func (s *runbookSource) store() (*runbook.Store, error) {
	dir := s.stateDir
	if dir == "" {
		d, err := runbook.DefaultStateDir()
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, err)
		}
		dir = d
	}
	return &runbook.Store{Dir: dir}, nil
}

// loadEnv loads --env NAME|FILE (default $PGACTL_ENV, else the shipped demo).
func loadEnv(nameOrPath, stateDir string) (*runbook.Environment, error) {
	if nameOrPath == "" {
		nameOrPath = os.Getenv("PGACTL_ENV")
	}
	if nameOrPath == "" {
		nameOrPath = "demo"
	}
	if runbook.IsFileRef(nameOrPath) {
		abs, err := filepath.Abs(nameOrPath)
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, err)
		}
		nameOrPath = abs
	}
	env, err := runbook.LoadEnvironment(nameOrPath, stateDir)
	if errors.Is(err, fs.ErrNotExist) && nameOrPath == "demo" {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("%w; is the demo running? start it with `make demo` (same --state-dir)", err))
	}
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return env, nil
}

func checkOutput(output string, allowed ...string) error {
	for _, a := range allowed {
		if output == a {
			return nil
		}
	}
	return exitcode.With(exitcode.Usage, fmt.Errorf("unknown output format %q (want %s)", output, strings.Join(allowed, "|")))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newRunbookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runbook",
		Short: "The executable deployment runbook: list, show, run, watch, status, log, report, env",
		Long: `The v3.2.0 deployment plan as an executable runbook (or your own, --file).

Phases: pre-deployment, staging, production, monitoring, rollback. Address a phase by its id and a
step as PHASE/STEP. Variables and the service commands come from an environment (--env NAME|FILE,
default $PGACTL_ENV, else the shipped "demo", which only reaches loopback). Runs are kept under the
state directory: state.json (resume with --resume) and an append-only audit.jsonl.

Exit codes: 0 ok, 1 a step failed or the run was stopped, 2 usage or configuration error (also a
destructive step refused under --yes), 3 target unreachable, 4 authentication failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRunbookListCmd(), newRunbookShowCmd(), newRunbookRunCmd(), newRunbookStatusCmd(),
		newRunbookLogCmd(), newRunbookReportCmd(), newRunbookWatchCmd(), newRunbookEnvCmd())
	return cmd
}

func newRunbookListCmd() *cobra.Command {
	var src runbookSource
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the runbook's phases and steps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			rb, err := src.runbook()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return writeJSON(w, rb)
			}
			fmt.Fprintf(w, "%s (%s)\n", rb.Title, rb.Source)
			for _, p := range rb.Phases {
				fmt.Fprintf(w, "\n%s — %s\n", p.ID, p.Title)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				for _, s := range p.Steps {
					kind := string(s.Kind)
					if s.Kind == runbook.KindCheck {
						kind += ":" + string(s.Check)
					}
					flag := ""
					if s.Destructive {
						flag = "DESTRUCTIVE"
					}
					fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s\n", p.ID, s.ID, kind, flag, s.Title)
				}
				tw.Flush()
			}
			fmt.Fprintf(w, "\nenvironments: %s (or --env FILE)\n", strings.Join(runbook.EnvironmentNames(), ", "))
			return nil
		},
	}
	src.registerFile(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func newRunbookShowCmd() *cobra.Command {
	var src runbookSource
	var output string
	var raw bool
	cmd := &cobra.Command{
		Use:   "show [PHASE|PHASE/STEP]",
		Short: "Show steps in full (or, with --raw, the runbook's TOML source)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if raw {
				if src.file == "" {
					_, err := w.Write(runbook.DefaultRunbookTOML())
					return err
				}
				data, err := os.ReadFile(src.file)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				_, err = w.Write(data)
				return err
			}
			rb, err := src.runbook()
			if err != nil {
				return err
			}
			var targets []runbook.Target
			if len(args) == 1 {
				t, err := runbook.ParseTarget(args[0])
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				targets = append(targets, t)
			} else {
				for _, p := range rb.Phases {
					targets = append(targets, runbook.Target{Phase: p.ID})
				}
			}
			type shown struct {
				Phase string        `json:"phase"`
				Step  *runbook.Step `json:"step"`
			}
			var all []shown
			for _, t := range targets {
				p, steps, err := rb.Select(t)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				for _, s := range steps {
					all = append(all, shown{Phase: p.ID, Step: s})
				}
			}
			if output == "json" {
				return writeJSON(w, all)
			}
			for i, s := range all {
				if i > 0 {
					fmt.Fprintln(w)
				}
				printStep(w, s.Phase, s.Step)
			}
			return nil
		},
	}
	src.registerFile(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the runbook file itself (start your own runbook from it)")
	return cmd
}

// printStep writes one step the way an operator reads it.
func printStep(w io.Writer, phase string, s *runbook.Step) {
	fmt.Fprintf(w, "%s/%s  %s\n", phase, s.ID, s.Title)
	kind := string(s.Kind)
	if s.Kind == runbook.KindCheck {
		kind += " " + string(s.Check)
	}
	if s.Destructive {
		kind += ", DESTRUCTIVE (asks to type its id)"
	}
	if t := s.EffectiveTimeout(); t > 0 {
		kind += ", timeout " + t.String()
	}
	if s.Retries > 0 {
		kind += fmt.Sprintf(", %d retries", s.Retries)
	}
	fmt.Fprintf(w, "  kind: %s\n", kind)
	indent := func(label, text string) {
		if strings.TrimSpace(text) == "" {
			return
		}
		fmt.Fprintf(w, "  %s:\n", label)
		for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	indent("about", s.Description)
	for _, item := range s.Checklist {
		fmt.Fprintf(w, "    [ ] %s\n", item)
	}
	indent("run", s.Run)
	if s.SQL != "" {
		db := s.Database
		if db == "" {
			db = runbook.DefaultDatabase
		}
		indent("sql on "+db, s.SQL)
		if len(s.Params) > 0 {
			fmt.Fprintf(w, "  params: %s\n", strings.Join(s.Params, ", "))
		}
	}
	if x := s.Expect; x != nil {
		if x.Rows != nil {
			fmt.Fprintf(w, "  expect rows %s\n", x.Rows)
		}
		if x.Value != nil {
			fmt.Fprintf(w, "  expect value %s\n", x.Value)
		}
		if x.Equals != nil {
			b, _ := json.Marshal(x.Equals)
			fmt.Fprintf(w, "  expect rows equal %s\n", b)
		}
	}
	for _, kv := range [][2]string{{"url", s.URL}, {"database", s.Database}, {"role", s.Role}, {"name", s.Name},
		{"hostname", s.Hostname}, {"username", s.Username}, {"secret", s.Secret}, {"password", s.Password}} {
		if kv[1] != "" && !(kv[0] == "database" && s.SQL != "") {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
	}
	if len(s.Headers) > 0 {
		fmt.Fprintf(w, "  headers: %s\n", strings.Join(s.Headers, "; "))
	}
}

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
		if resumed, err = findResumable(store, f.runID, target); err != nil {
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
	var refs []string
	if resumed != nil {
		for _, s := range resumed.Steps {
			if s.Destructive && s.Status != runbook.StatusSucceeded && s.Status != runbook.StatusSkipped {
				refs = append(refs, s.Phase+"/"+s.Step)
			}
		}
	} else {
		p, steps, err := rb.Select(t)
		if err != nil {
			return exitcode.With(exitcode.Usage, err)
		}
		for _, s := range steps {
			if s.Destructive {
				refs = append(refs, p.ID+"/"+s.ID)
			}
		}
	}
	if len(refs) > 0 {
		return exitcode.With(exitcode.Usage, fmt.Errorf("destructive steps ahead (%s): with --yes, pass --confirm-destructive to run them, or run interactively",
			strings.Join(refs, ", ")))
	}
	return nil
}

// findResumable picks the run to resume: the given one, else the newest unfinished run (of target).
func findResumable(store *runbook.Store, id, target string) (*runbook.RunState, error) {
	if id != "" {
		st, err := store.Load(id)
		if err != nil {
			return nil, err
		}
		if !st.Resumable() {
			return nil, fmt.Errorf("run %s already succeeded", id)
		}
		return st, nil
	}
	runs, err := store.List()
	if err != nil {
		return nil, err
	}
	for _, st := range runs {
		if target != "" && st.Target != target && !strings.HasPrefix(st.Target, target+"/") {
			continue
		}
		if st.Resumable() {
			return st, nil
		}
	}
	if target != "" {
		return nil, fmt.Errorf("no unfinished run of %s under %s", target, store.Dir)
	}
	return nil, fmt.Errorf("no unfinished run under %s", store.Dir)
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

// stdinConfirmer asks on the terminal (or reads answers piped to stdin); with --yes it answers itself.
type stdinConfirmer struct {
	in          io.Reader
	out         io.Writer
	yes         bool
	destructive bool
	lines       chan string
}

func (c *stdinConfirmer) Confirm(ctx context.Context, p runbook.Prompt) (runbook.Reply, error) {
	s := p.Step
	if c.yes {
		switch p.Kind {
		case runbook.PromptManual:
			fmt.Fprintf(c.out, "    manual step confirmed by --yes\n")
			return runbook.Reply{Decision: runbook.Proceed}, nil
		case runbook.PromptDestructive:
			if c.destructive {
				fmt.Fprintf(c.out, "    destructive step confirmed by --confirm-destructive\n")
				return runbook.Reply{Decision: runbook.Proceed, Typed: s.ID}, nil
			}
			return runbook.Reply{Decision: runbook.Proceed}, nil
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	}
	switch p.Kind {
	case runbook.PromptManual:
		if strings.TrimSpace(s.Description) != "" {
			for _, l := range strings.Split(strings.TrimSpace(s.Description), "\n") {
				fmt.Fprintf(c.out, "    %s\n", l)
			}
		}
		for _, item := range s.Checklist {
			fmt.Fprintf(c.out, "    [ ] %s\n", item)
		}
		return c.choose(ctx, "    Done? [y]es, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"y": runbook.Proceed, "yes": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	case runbook.PromptDestructive:
		fmt.Fprintf(c.out, "\n%s/%s  %s is DESTRUCTIVE.\n", p.Phase, s.ID, s.Title)
		for range 3 {
			fmt.Fprintf(c.out, "    Type the step id %q to run it, [s]kip, [a]bort: ", s.ID)
			line, err := c.readLine(ctx)
			if err != nil {
				return runbook.Reply{Decision: runbook.Abort}, err
			}
			switch line {
			case s.ID:
				return runbook.Reply{Decision: runbook.Proceed, Typed: line}, nil
			case "s", "skip":
				return runbook.Reply{Decision: runbook.Skip}, nil
			case "a", "abort":
				return runbook.Reply{Decision: runbook.Abort}, nil
			}
			fmt.Fprintf(c.out, "    %q is not the step id\n", line)
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	case runbook.PromptFailed:
		return c.choose(ctx, "    Step failed. [r]etry, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"r": runbook.Proceed, "retry": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	}
	return runbook.Reply{Decision: runbook.Abort}, nil
}

func (c *stdinConfirmer) choose(ctx context.Context, question string, answers map[string]runbook.Decision) (runbook.Reply, error) {
	for {
		fmt.Fprint(c.out, question)
		line, err := c.readLine(ctx)
		if err != nil {
			return runbook.Reply{Decision: runbook.Abort}, err
		}
		if d, ok := answers[strings.ToLower(line)]; ok {
			return runbook.Reply{Decision: d}, nil
		}
	}
}

// readLine reads one answer; it gives up when ctx is done (Ctrl-C) and treats end of input as abort.
func (c *stdinConfirmer) readLine(ctx context.Context) (string, error) {
	if c.lines == nil {
		c.lines = make(chan string)
		go func() {
			sc := bufio.NewScanner(c.in)
			for sc.Scan() {
				c.lines <- strings.TrimSpace(sc.Text())
			}
			close(c.lines)
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.out)
		return "", ctx.Err()
	case line, ok := <-c.lines:
		if !ok {
			fmt.Fprintln(c.out, "(end of input: abort)")
			return "a", nil
		}
		return line, nil
	}
}

// envSmoke runs the smoke suite against the environment's API: API_URL, API_USERNAME/API_PASSWORD,
// API_VIEWER_USERNAME/API_VIEWER_PASSWORD, DATABASE_URL and CORS_ORIGIN (all but API_URL optional).
type envSmoke struct {
	env *runbook.Environment
}

func (s envSmoke) Run(ctx context.Context, w io.Writer, only []string) (int, error) {
	apiURL, err := s.env.Lookup("API_URL")
	if err != nil {
		return 0, err
	}
	opt := func(name string) string {
		v, _ := s.env.Lookup(name)
		return v
	}
	cl, err := client.New(client.Options{BaseURL: apiURL, CAFile: s.env.CAFile, UserAgent: "pgactl/" + buildinfo.String()})
	if err != nil {
		return 0, err
	}
	suite, err := smoke.New(smoke.Config{
		Client:         cl,
		AdminUsername:  opt("API_USERNAME"),
		AdminPassword:  opt("API_PASSWORD"),
		ViewerUsername: opt("API_VIEWER_USERNAME"),
		ViewerPassword: opt("API_VIEWER_PASSWORD"),
		DatabaseURL:    opt("DATABASE_URL"),
		CORSOrigin:     opt("CORS_ORIGIN"),
		Only:           only,
	})
	if err != nil {
		return 0, err
	}
	failed, err := suite.Run(ctx, w)
	if errors.Is(err, smoke.ErrAuthFailed) {
		err = fmt.Errorf("%w: %w", runbook.ErrAuth, err)
	}
	return failed, err
}

func newRunbookStatusCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the latest run (or --run ID), step by step; --all lists every run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			store, err := src.store()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if all {
				runs, err := store.List()
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				if output == "json" {
					return writeJSON(w, runs)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tTARGET\tENV\tSTATUS\tSTARTED\tBY")
				for _, r := range runs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Target, r.Env, runStatus(store, r),
						r.StartedAt.Local().Format(time.DateTime), r.Operator)
				}
				return tw.Flush()
			}
			var st *runbook.RunState
			if runID != "" {
				st, err = store.Load(runID)
			} else {
				st, err = store.Latest()
			}
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			if output == "json" {
				return writeJSON(w, st)
			}
			fmt.Fprintf(w, "run %s: %s\n  target %s, environment %s, runbook %s\n  started %s by %s, updated %s\n",
				st.ID, runStatus(store, st), st.Target, st.Env, st.Runbook,
				st.StartedAt.Local().Format(time.DateTime), st.Operator, st.UpdatedAt.Local().Format(time.DateTime))
			if st.Error != "" {
				fmt.Fprintf(w, "  error: %s\n", st.Error)
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "STEP\tKIND\tSTATUS\tATTEMPTS\tDURATION\tERROR")
			for _, s := range st.Steps {
				dur := ""
				if !s.StartedAt.IsZero() && !s.EndedAt.IsZero() {
					dur = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%s\t%s\n", s.Phase, s.Step, s.Kind, s.Status, s.Attempts, dur, firstLine(s.Error))
			}
			tw.Flush()
			if st.Resumable() && !store.InProgress(st.ID) {
				fmt.Fprintf(w, "\ncontinue with: pgactl runbook run --resume --run %s\n", st.ID)
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	cmd.Flags().BoolVar(&all, "all", false, "list every run")
	return cmd
}

// runStatus tells a live run from one whose process died (its state still says running).
func runStatus(store *runbook.Store, st *runbook.RunState) string {
	if st.Status == runbook.StatusRunning && !store.InProgress(st.ID) {
		return "interrupted (the process running it stopped)"
	}
	return string(st.Status)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func newRunbookLogCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print a run's audit log (latest run, or --run ID)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			store, err := src.store()
			if err != nil {
				return err
			}
			if runID == "" {
				st, err := store.Latest()
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				runID = st.ID
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				f, err := os.Open(store.AuditPath(runID))
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				defer f.Close()
				_, err = io.Copy(w, f)
				return err
			}
			recs, err := store.ReadAudit(runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			for _, r := range recs {
				printAuditRecord(w, r)
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text|json (the JSON lines as stored)")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	return cmd
}

func printAuditRecord(w io.Writer, r runbook.AuditRecord) {
	at := r.Time.Local().Format(time.DateTime)
	switch r.Event {
	case runbook.AuditRunStarted, runbook.AuditRunResumed:
		fmt.Fprintf(w, "%s  %s  %s: %s, environment %s, runbook %s\n", at, r.Who, r.Event, r.Target, r.Env, r.Runbook)
	case runbook.AuditConfirmation:
		fmt.Fprintf(w, "%s  %s  %s/%s: %s prompt: %s\n", at, r.Who, r.Phase, r.Step, r.Prompt, r.Decision)
	case runbook.AuditStep:
		exit := ""
		if r.ExitCode != nil {
			exit = fmt.Sprintf(", exit %d", *r.ExitCode)
		}
		fmt.Fprintf(w, "%s  %s  %s/%s (%s, attempt %d): %s%s, %s\n", at, r.Who, r.Phase, r.Step, r.Kind, r.Attempt,
			r.Status, exit, r.End.Sub(r.Start).Round(time.Millisecond))
		if r.Command != "" {
			for _, l := range strings.Split(strings.TrimRight(r.Command, "\n"), "\n") {
				fmt.Fprintf(w, "    $ %s\n", l)
			}
		}
		if r.Output != "" {
			for _, l := range strings.Split(r.Output, "\n") {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
	case runbook.AuditRunFinished:
		fmt.Fprintf(w, "%s  %s  run finished: %s", at, r.Who, r.Status)
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintf(w, "%s  %s  %s\n", at, r.Who, r.Event)
	}
}

func newRunbookEnvCmd() *cobra.Command {
	var src runbookSource
	var output string
	var raw bool
	cmd := &cobra.Command{
		Use:   "env [NAME|FILE]",
		Short: "Show an environment's variables (secrets hidden) and commands; --raw prints the file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			w := cmd.OutOrStdout()
			if raw {
				if name == "" {
					name = os.Getenv("PGACTL_ENV")
				}
				if name == "" {
					name = "demo"
				}
				if runbook.IsFileRef(name) {
					data, err := os.ReadFile(name)
					if err != nil {
						return exitcode.With(exitcode.Usage, err)
					}
					_, err = w.Write(data)
					return err
				}
				data, ok := runbook.EnvironmentTOML(name)
				if !ok {
					return exitcode.With(exitcode.Usage, fmt.Errorf("no shipped environment %q (shipped: %s)", name, strings.Join(runbook.EnvironmentNames(), ", ")))
				}
				_, err := w.Write(data)
				return err
			}
			store, err := src.store()
			if err != nil {
				return err
			}
			env, err := loadEnv(name, store.Dir)
			if err != nil {
				return err
			}
			type variable struct {
				Name   string `json:"name"`
				Value  string `json:"value,omitempty"`
				Secret bool   `json:"secret,omitempty"`
				Error  string `json:"error,omitempty"`
			}
			var vars []variable
			for _, n := range env.VarNames() {
				v, err := env.Lookup(n)
				switch {
				case err != nil:
					vars = append(vars, variable{Name: n, Error: err.Error()})
				case env.IsSecret(n):
					vars = append(vars, variable{Name: n, Secret: true})
				default:
					vars = append(vars, variable{Name: n, Value: env.Redact(v)})
				}
			}
			if output == "json" {
				cmds := make(map[string]string, len(env.Commands))
				for k, v := range env.Commands {
					cmds[k] = env.Redact(v)
				}
				return writeJSON(w, struct {
					Name         string            `json:"name"`
					Description  string            `json:"description,omitempty"`
					LoopbackOnly bool              `json:"loopback_only"`
					Variables    []variable        `json:"variables"`
					Commands     map[string]string `json:"commands"`
				}{env.Name, env.Description, env.LoopbackOnly, vars, cmds})
			}
			fmt.Fprintf(w, "environment %s: %s\n", env.Name, env.Description)
			if env.LoopbackOnly {
				fmt.Fprintln(w, "loopback only: checks and SQL reach this machine only")
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, v := range vars {
				switch {
				case v.Error != "":
					fmt.Fprintf(tw, "%s\tUNRESOLVED: %s\n", v.Name, v.Error)
				case v.Secret:
					fmt.Fprintf(tw, "%s\t(secret, set)\n", v.Name)
				default:
					fmt.Fprintf(tw, "%s\t%s\n", v.Name, v.Value)
				}
			}
			tw.Flush()
			if len(env.Commands) > 0 {
				names := make([]string, 0, len(env.Commands))
				for n := range env.Commands {
					names = append(names, n)
				}
				sort.Strings(names)
				fmt.Fprintf(w, "\ncommands: %s\n", strings.Join(names, ", "))
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the environment file itself (start your own from it)")
	return cmd
}
