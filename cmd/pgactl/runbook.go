package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
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

// envName is --env NAME|FILE, defaulting to $PGACTL_ENV, else the shipped demo.
func envName(nameOrPath string) string {
	if nameOrPath == "" {
		nameOrPath = os.Getenv("PGACTL_ENV")
	}
	if nameOrPath == "" {
		nameOrPath = "demo"
	}
	return nameOrPath
}

// loadEnv loads --env NAME|FILE (default $PGACTL_ENV, else the shipped demo).
func loadEnv(nameOrPath, stateDir string) (*runbook.Environment, error) {
	nameOrPath = envName(nameOrPath)
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

// runOrLatest is runID, or the id of the latest run when it is empty.
func runOrLatest(store *runbook.Store, runID string) (string, error) {
	if runID != "" {
		return runID, nil
	}
	st, err := store.Latest()
	if err != nil {
		return "", exitcode.With(exitcode.Usage, err)
	}
	return st.ID, nil
}
