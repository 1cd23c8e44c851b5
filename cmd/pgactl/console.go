package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/runbook/shared"
	"github.com/pganalytics/pganalytics/smoke"
	"github.com/pganalytics/pganalytics/tui"
	runbookview "github.com/pganalytics/pganalytics/tui/runbook"
	"github.com/pganalytics/pganalytics/tui/session"
	"github.com/pganalytics/pganalytics/tui/theme"
)

// consoleFlags are the console's options. `pgactl` without a command runs the console with the
// defaults: everything then comes from the environment and the contexts file.
type consoleFlags struct {
	conn     apiFlags
	src      runbookSource
	env      string
	theme    string
	refresh  time.Duration
	noStream bool
}

func (f *consoleFlags) register(fs *pflag.FlagSet) {
	f.conn.register(fs)
	f.src.register(fs)
	fs.StringVar(&f.env, "env", "", "runbook environment: a shipped name ("+strings.Join(runbook.EnvironmentNames(), ", ")+") or a file (default $PGACTL_ENV, else demo)")
	fs.StringVar(&f.theme, "theme", "", "colours for a dark or light terminal: auto|dark|light (default $PGACTL_THEME, else auto); NO_COLOR turns colour off")
	fs.DurationVar(&f.refresh, "refresh", 5*time.Second, "replication poll interval (the SSE stream updates in between); + and - change it live")
	fs.BoolVar(&f.noStream, "no-stream", false, "poll only; do not follow the SSE stream")
}

func defaultConsoleFlags() consoleFlags {
	return consoleFlags{conn: apiFlags{timeout: 10 * time.Second}, refresh: 5 * time.Second}
}

func newConsoleCmd() *cobra.Command {
	f := defaultConsoleFlags()
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Open the ops console (replication, runbook, smoke, collectors, alerts, rollback)",
		Long: `Open the terminal console. Views: 1 Replication (live, from the SSE stream, polling as fallback),
2 Runbook, 3 Smoke, 4 Collectors, 5 Alerts, 6 Rollback. Press ? for every key.

The API and the credentials come from flags, then PGACTL_API_URL, PGACTL_USERNAME, PGACTL_PASSWORD
(or PGACTL_PASSWORD_FILE, or PGACTL_TOKEN), then the contexts file; a missing password is asked for on
the terminal. The runbook views run the shipped runbook (or --file) in the environment --env.`,
		Example: `  PGACTL_API_URL=http://127.0.0.1:8080 PGACTL_USERNAME=admin PGACTL_PASSWORD=... pgactl
  pgactl console --context staging --env staging
  NO_COLOR=1 pgactl console --theme light --refresh 2s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	f.register(cmd.Flags())
	return cmd
}

// runConsole runs the console with default options (the root command, the demo).
func runConsole(cmd *cobra.Command) error {
	f := defaultConsoleFlags()
	return f.run(cmd)
}

func (f *consoleFlags) run(cmd *cobra.Command) error {
	if f.refresh < time.Second {
		return exitcode.With(exitcode.Usage, fmt.Errorf("--refresh %s: want at least 1s (the console polls every 1s 2s 5s 10s 30s or 1m)", f.refresh))
	}
	mode, err := f.themeMode()
	if err != nil {
		return err
	}
	cctx, err := f.conn.resolve(client.Context{})
	if err != nil {
		return err
	}
	if cctx.APIURL == "" {
		return exitcode.With(exitcode.Usage, fmt.Errorf("no API to connect to: set %s, --api-url or a context in the contexts file", client.EnvAPIURL))
	}
	if cctx.Username == "" && cctx.Token == "" {
		return exitcode.With(exitcode.Usage, fmt.Errorf("no credentials: set %s and %s (or %s)", client.EnvUsername, client.EnvPassword, client.EnvToken))
	}
	if err := fillPassword(cmd, "user", cctx.Username, &cctx.Password, client.EnvPassword); err != nil {
		return err
	}
	base, err := f.conn.newClient(cctx)
	if err != nil {
		return err
	}
	sess := session.New(base, cctx.Username, cctx.Password, cctx.Token)
	opts := tui.Options{
		Context:  cmd.Context(),
		Session:  sess,
		API:      sess,
		APIURL:   base.BaseURL(),
		User:     cctx.Username,
		Theme:    theme.New(lipgloss.DefaultRenderer(), mode),
		Refresh:  f.refresh,
		NoStream: f.noStream,
	}
	suite, err := smoke.New(smoke.Config{
		Client: base, AdminUsername: cctx.Username, AdminPassword: cctx.Password,
		ViewerUsername: cctx.ViewerUsername, ViewerPassword: cctx.ViewerPassword,
		DatabaseURL: cctx.DatabaseURL, CORSOrigin: os.Getenv("PGACTL_CORS_ORIGIN"),
	})
	if err != nil {
		opts.SmokeUnavailable = err.Error()
	} else {
		opts.Smoke = suite
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s (%s@%s, console)", cctx.Username, runbook.CurrentOperator(), host)
	if runner, err := f.runner(&shared.Store{API: sess, URL: base.BaseURL(), Holder: holder}, holder); err != nil {
		opts.RunbookUnavailable = err.Error()
	} else {
		opts.Runner = runner
	}

	app := tui.New(opts)
	p := tea.NewProgram(app, tea.WithAltScreen(), tea.WithContext(cmd.Context()), tea.WithOutput(cmd.OutOrStdout()))
	_, runErr := p.Run()
	// Killed or quit mid-step: let the runbook record the interruption before the process ends.
	app.Close(5 * time.Second)
	logoutCtx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 2*time.Second)
	defer cancel()
	_ = sess.Logout(logoutCtx) // best effort: the refresh token expires on its own
	switch {
	case runErr != nil && !errors.Is(runErr, tea.ErrProgramKilled):
		return exitcode.With(exitcode.Usage, fmt.Errorf("console: %w", runErr))
	case sess.AuthErr() != nil:
		return exitcode.With(exitcode.Auth, sess.AuthErr())
	case app.AbandonedStep():
		return exitcode.With(exitcode.CheckFailed, errors.New("quit mid-step: the run was saved as interrupted; `pgactl runbook run --resume` continues it"))
	}
	return nil
}

// runner loads the runbook and its environment for the Runbook and Rollback views; their runs are
// shared on the API the console is connected to.
func (f *consoleFlags) runner(runs runbook.RunStore, operator string) (*runbookview.EngineRunner, error) {
	rb, err := f.src.runbook()
	if err != nil {
		return nil, err
	}
	store, err := f.src.store()
	if err != nil {
		return nil, err
	}
	env, err := loadEnv(f.env, store.Dir)
	if err != nil {
		return nil, err
	}
	return &runbookview.EngineRunner{Book: rb, Environment: env, StateDir: store.Dir, Runs: runs,
		Operator: operator, Smoke: envSmoke{env: env}}, nil
}

// themeMode picks the palette: --theme, then PGACTL_THEME, then the terminal's background.
func (f *consoleFlags) themeMode() (theme.Mode, error) {
	choice := f.theme
	if choice == "" {
		choice = os.Getenv("PGACTL_THEME")
	}
	switch choice {
	case "dark":
		return theme.Dark, nil
	case "light":
		return theme.Light, nil
	case "", "auto":
		// Asked once, before the program owns the terminal: the answer arrives on stdin.
		if lipgloss.HasDarkBackground() {
			return theme.Dark, nil
		}
		return theme.Light, nil
	}
	return theme.Dark, exitcode.With(exitcode.Usage, fmt.Errorf("--theme %q: want auto, dark or light", choice))
}
