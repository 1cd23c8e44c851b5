package main

import (
	"context"
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

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/runbook/shared"
	"github.com/pganalytics/pganalytics/tui/session"
)

// runbookSource is where a command reads its runbook and state from.
type runbookSource struct {
	file     string // runbook file; "" for the shipped one
	stateDir string
	local    bool     // runs in the local state directory, not on the API
	conn     apiFlags // the API the runs are shared on
}

// registerRuns adds the flags that choose where runs are kept: the API (default) or --local.
func (s *runbookSource) registerRuns(fs *pflag.FlagSet) {
	s.registerState(fs)
	fs.BoolVar(&s.local, "local", false, "offline fallback: keep runs in the local state directory, not on the API (nobody else sees them; approvals cannot be given)")
	s.conn.register(fs)
}

// runs opens where runs are kept, and names who is at the keyboard for the audit log: runs are
// shared on the API of the current context (PGACTL_API_URL, --api-url or the contexts file) unless
// --local. A shared run's operator is the API user, with the machine's login and host.
//
// Without an API named there, the runbook environment (envArg, as --env takes it) may name one in
// RUNS_API_URL, RUNS_USERNAME, RUNS_PASSWORD and RUNS_CA_FILE: the demo's names its own API.
func (s *runbookSource) runs(cmd *cobra.Command, envArg string) (runs runbook.RunStore, local *runbook.Store, operator string, err error) {
	if local, err = s.store(); err != nil {
		return nil, nil, "", err
	}
	if s.local {
		return local, local, runbook.CurrentOperator(), nil
	}
	cctx, err := s.conn.resolve(client.Context{})
	if errors.Is(err, client.ErrNoAPIURL) {
		if fromEnv, ok := runsAPIOf(envArg, local.Dir); ok {
			cctx, err = s.conn.resolve(fromEnv)
		}
	}
	if errors.Is(err, client.ErrNoAPIURL) {
		return nil, nil, "", exitcode.With(exitcode.Usage, fmt.Errorf(
			"runs are shared on the pgAnalytics API: name it (%s, --api-url or a context) and log in as your user, or pass --local to keep the run on this machine only", client.EnvAPIURL))
	}
	if err != nil {
		return nil, nil, "", err
	}
	base, err := s.conn.newClient(cctx)
	if err != nil {
		return nil, nil, "", err
	}
	user, pw, envVar := cctx.Username, &cctx.Password, client.EnvPassword
	if user == "" && cctx.Token == "" {
		user, pw, envVar = cctx.ViewerUsername, &cctx.ViewerPassword, client.EnvViewerPassword
	}
	if user == "" && cctx.Token == "" {
		return nil, nil, "", exitcode.With(exitcode.Usage, fmt.Errorf("shared runs need your API user: set %s (and %s), or pass --local", client.EnvUsername, client.EnvPassword))
	}
	if err := fillPassword(cmd, "user", user, pw, envVar); err != nil {
		return nil, nil, "", err
	}
	sess := session.New(base, user, *pw, cctx.Token)
	id, err := sess.Login(cmd.Context())
	if err != nil {
		return nil, nil, "", exitFor(fmt.Errorf("log in to %s for shared runs: %w", cctx.APIURL, err))
	}
	host, _ := os.Hostname()
	operator = fmt.Sprintf("%s (%s@%s)", id.User, runbook.CurrentOperator(), host)
	return &shared.Store{API: sess, URL: cctx.APIURL, Holder: operator}, local, operator, nil
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

// runsAPIOf reads the RUNS_* variables of a runbook environment: where its runs are shared.
func runsAPIOf(envArg, stateDir string) (client.Context, bool) {
	env, err := loadEnv(envArg, stateDir)
	if err != nil {
		return client.Context{}, false
	}
	get := func(name string) string {
		v, _ := env.Lookup(name)
		return v
	}
	c := client.Context{APIURL: get("RUNS_API_URL"), Username: get("RUNS_USERNAME"), Password: get("RUNS_PASSWORD"), CAFile: get("RUNS_CA_FILE")}
	return c, c.APIURL != ""
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
		newRunbookLogCmd(), newRunbookReportCmd(), newRunbookWatchCmd(), newRunbookEnvCmd(),
		newRunbookApproveCmd(), newRunbookApprovalsCmd())
	return cmd
}

// pickRun opens the runs (runs) and names the one a command shows: runID, else the latest.
func (s *runbookSource) pickRun(cmd *cobra.Command, runID string) (runbook.RunStore, string, error) {
	runs, _, _, err := s.runs(cmd, "")
	if err != nil {
		return nil, "", err
	}
	runID, err = runOrLatest(cmd.Context(), runs, runID)
	return runs, runID, err
}

// runOrLatest is runID, or the id of the latest run when it is empty.
func runOrLatest(ctx context.Context, runs runbook.RunStore, runID string) (string, error) {
	if runID != "" {
		return runID, nil
	}
	st, err := runbook.Latest(ctx, runs)
	if err != nil {
		return "", exitcode.With(exitcode.Usage, err)
	}
	return st.ID, nil
}
