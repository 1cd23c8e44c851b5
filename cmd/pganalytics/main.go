// Command pganalytics is the pgAnalytics collector: it reads replication, WAL and database state
// from PostgreSQL 13-18 with a pg_monitor role and pushes it to the pgAnalytics API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/collector/agent"
	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/collector/sender"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// Exit codes shared by every pgAnalytics command line.
const defaultConfig = "/etc/pganalytics/collector.toml"

// apiExit maps an API failure to an exit code.
func apiExit(err error) error {
	var apiErr *client.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*buffer.InUseError)):
		// Another collector runs with this spool: starting a second one needs a person.
		return exitcode.With(exitcode.Usage, err)
	case errors.Is(err, sender.ErrUnauthorized), errors.Is(err, sender.ErrForbidden):
		return exitcode.With(exitcode.Auth, err)
	case errors.As(err, &apiErr) && (apiErr.Status == 401 || apiErr.Status == 403):
		return exitcode.With(exitcode.Auth, err)
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, sender.ErrNotSpooled):
		return exitcode.With(exitcode.Unreachable, err)
	}
	return exitcode.With(exitcode.CheckFailed, err)
}

func newRootCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var configPath string
	var dryRun, once bool
	root := &cobra.Command{
		Use:           "pganalytics",
		Short:         "pgAnalytics collector: PostgreSQL replication, WAL and wraparound metrics pushed to the API",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(configPath, stderr)
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, log)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			ctx := cmd.Context()
			if dryRun {
				res := a.DryRun(ctx, stdout)
				a.Close(context.WithoutCancel(ctx))
				switch {
				case res.Unreachable > 0:
					return exitcode.With(exitcode.Unreachable, fmt.Errorf("%d instance(s) unreachable", res.Unreachable))
				case res.MissingPrivileges > 0 || res.FailedFamilies > 0:
					return exitcode.With(exitcode.CheckFailed, fmt.Errorf("%d missing privilege(s), %d failed query(ies)", res.MissingPrivileges, res.FailedFamilies))
				}
				return nil
			}
			c, err := apiClient(cfg)
			if err != nil {
				return err
			}
			if token, err := agent.ReadToken(cfg.API.TokenFile); err == nil {
				a.SetCollectorID(agent.CollectorIDFromToken(token))
			}
			if once {
				return apiExit(a.Once(ctx, c))
			}
			return apiExit(a.Run(ctx, c))
		},
	}
	root.PersistentFlags().StringVar(&configPath, "config", defaultConfig, "collector configuration file (TOML)")
	root.Flags().BoolVar(&dryRun, "dry-run", false, "connect to every instance, check privileges, run every query once, print the metrics; push nothing")
	root.Flags().BoolVar(&once, "once", false, "collect and push one cycle (plus anything spooled), then exit")
	root.MarkFlagsMutuallyExclusive("dry-run", "once")
	root.AddCommand(newRegisterCmd(&configPath, stdout, stderr, getenv), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, "pganalytics", buildinfo.String())
		},
	})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.With(exitcode.Usage, err) })
	return root
}

func newRegisterCmd(configPath *string, stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var secretFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register this collector with the API and store its token (secret from REGISTRATION_SECRET or --secret-file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(*configPath, stderr)
			if err != nil {
				return err
			}
			secret, err := agent.ReadSecret(secretFile, getenv("REGISTRATION_SECRET"))
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			c, err := newClient(cfg, "")
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			resp, err := agent.Register(cmd.Context(), c, secret, cfg.Collector.Name, cfg.Collector.Hostname, cfg.API.TokenFile, force)
			if errors.Is(err, agent.ErrAlreadyRegistered) {
				return exitcode.With(exitcode.Usage, err)
			}
			if err != nil {
				return apiExit(err)
			}
			log.Info("registered", "collector_id", resp.CollectorID, "name", resp.Name, "token_file", cfg.API.TokenFile)
			fmt.Fprintf(stdout, "registered collector %s (%s); token stored in %s\n", resp.Name, resp.CollectorID, cfg.API.TokenFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the registration secret (default: $REGISTRATION_SECRET)")
	cmd.Flags().BoolVar(&force, "force", false, "register again even if a token file exists (replaces it)")
	return cmd
}

// load reads the configuration and sets up logging from it.
func load(path string, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, exitcode.With(exitcode.Usage, err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Collector.LogLevel)); err != nil {
		return nil, nil, exitcode.With(exitcode.Usage, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.Collector.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	return cfg, slog.New(h).With("collector", cfg.Collector.Name), nil
}

func newClient(cfg *config.Config, token string) (*client.Client, error) {
	return client.New(client.Options{
		BaseURL:            cfg.API.URL,
		Token:              token,
		CAFile:             cfg.API.CAFile,
		CertFile:           cfg.API.CertFile,
		KeyFile:            cfg.API.KeyFile,
		InsecureSkipVerify: cfg.API.InsecureSkipVerify,
		Timeout:            cfg.API.Timeout.D(),
		UserAgent:          "pganalytics-collector/" + buildinfo.String(),
	})
}

func apiClient(cfg *config.Config) (*client.Client, error) {
	token, err := agent.ReadToken(cfg.API.TokenFile)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	c, err := newClient(cfg, token)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes the command line until ctx ends (SIGTERM/SIGINT in main) and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newRootCmd(stdout, stderr, getenv)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "pganalytics:", err)
	// Anything cobra itself refused (unknown command or flag) is a usage error.
	return exitcode.Of(err, exitcode.Usage)
}
