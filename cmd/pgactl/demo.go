package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/demo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newDemoCmd() *cobra.Command {
	var (
		opts       demo.Options
		noConsole  bool
		noWorkload bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole stack locally on throwaway clusters (store, API, primary, standby, cascading standby, collector)",
		Long: `demo starts, on this machine only:
  - a throwaway metrics-store PostgreSQL cluster, migrated, with an admin, a viewer and an approver
    user (admin and approver hold every team role, for the runbook's approvals);
  - the API (pganalytics-api) on loopback, on HTTPS from a throwaway CA (--plain-http: none), or
    with --ha two API servers behind haproxy;
  - a monitored primary with a streaming standby, a standby of that standby (cascading
    replication) and a small write workload;
  - a registered collector (pganalytics) pushing every few seconds;
then opens the console on it. Credentials and URLs go to STATE_DIR/demo/demo.env.
Ctrl-C (or quitting the console) stops everything and removes the clusters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// `pgactl demo | tee log`, then Ctrl-C: tee dies first, and a write to its pipe would kill
			// this process (SIGPIPE) before the cleanup removes the credentials. Ignored, the write
			// fails and the cleanup goes on.
			signal.Ignore(syscall.SIGPIPE)
			if opts.BinDir == "" {
				exe, err := os.Executable()
				if err != nil {
					return exitcode.With(exitcode.Usage, fmt.Errorf("find binaries: %w (pass --bin-dir)", err))
				}
				opts.BinDir = filepath.Dir(exe)
			}
			if opts.StateDir == "" {
				dir, err := runbook.DefaultStateDir()
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				opts.StateDir = dir
			}
			opts.Workload = !noWorkload
			opts.Cascade = true
			opts.Out = cmd.ErrOrStderr()
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			interactive := !noConsole && isatty.IsTerminal(os.Stdin.Fd()) && isatty.IsTerminal(os.Stdout.Fd())
			return demo.Run(cmd.Context(), opts, func(ctx context.Context, env demo.Env) error {
				printDemoSummary(cmd.OutOrStdout(), env, opts.Interval, interactive)
				if interactive {
					return runDemoConsole(ctx, cmd, env)
				}
				<-ctx.Done()
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.BinDir, "bin-dir", "", "directory holding pganalytics-api and pganalytics (default: next to pgactl)")
	f.StringVar(&opts.StateDir, "state-dir", "", "state directory (default $PGACTL_STATE_DIR, else ~/.local/state/pgactl)")
	f.StringVar(&opts.APIAddr, "addr", "127.0.0.1:8080", "loopback address for the API")
	f.DurationVar(&opts.Interval, "interval", 5*time.Second, "collector interval")
	f.BoolVar(&noConsole, "no-console", false, "do not open the console; run until Ctrl-C")
	f.BoolVar(&noWorkload, "no-workload", false, "do not write to the demo primary")
	f.BoolVar(&opts.PlainHTTP, "plain-http", false, "no TLS: plain HTTP to the API and sslmode=disable to PostgreSQL")
	f.BoolVar(&opts.HA, "ha", false, "two API servers behind haproxy (deploy/haproxy/haproxy.cfg) on --addr: watch a rolling deploy or a server dying")
	f.BoolVar(&opts.MutualTLS, "mtls", false, "mutual TLS: the collector presents a client certificate, the API requires one from collectors")
	return cmd
}

func printDemoSummary(w io.Writer, env demo.Env, interval time.Duration, interactive bool) {
	v := env.Vars
	fmt.Fprintf(w, `
pgAnalytics demo is running.
  API         %s   (log: %s)
  admin       %s / %s
  viewer      %s / %s
  approver    %s / %s   (the second person of the runbook's two-person approvals)
  store       %s
  primary     %s
  standby     %s
  cascade     %s   (streams from the standby)
  collector   demo-collector, every %s   (log: %s)
  TLS         %s
  environment %s

In another terminal:
  set -a; . %s; set +a
  %s smoke                            # the seed's smoke and security checks
  %s replication --watch              # live replication topology (primary → standby → cascade)
  %s events                           # promotions, switches, slots: what changed and when
  %s runbook run staging --env demo   # the deployment plan's staging phase, end to end
  PGACTL_USERNAME=$PGACTL_APPROVER_USERNAME PGACTL_PASSWORD=$PGACTL_APPROVER_PASSWORD %s runbook approvals
                                      # as the second person: what waits for approval (then runbook approve)
  psql "$PGACTL_DATABASE_URL" -c "SELECT collector_id, COUNT(*) FROM metrics GROUP BY 1"

`, v["PGACTL_API_URL"], apiLogs(v),
		v["PGACTL_USERNAME"], v["PGACTL_PASSWORD"], v["PGACTL_VIEWER_USERNAME"], v["PGACTL_VIEWER_PASSWORD"],
		v["PGACTL_APPROVER_USERNAME"], v["PGACTL_APPROVER_PASSWORD"],
		v["PGACTL_DATABASE_URL"], v["PRIMARY_URL"], v["STANDBY_URL"], v["CASCADE_URL"], interval,
		filepath.Join(v["DEMO_DIR"], "collector.log"), tlsSummary(v), env.File, env.File,
		filepath.Join(v["BIN_DIR"], "pgactl"), filepath.Join(v["BIN_DIR"], "pgactl"), filepath.Join(v["BIN_DIR"], "pgactl"),
		filepath.Join(v["BIN_DIR"], "pgactl"), filepath.Join(v["BIN_DIR"], "pgactl"))
	if stats := v["HAPROXY_STATS_URL"]; stats != "" {
		fmt.Fprintf(w, `Two API servers behind haproxy: %s
  haproxy statistics: %s
  %s runbook run production/deploy-api --env demo   # rolling upgrade, one server at a time
  kill -9 $(cat %s)            # a server dies; haproxy takes it out, pgactl demo restarts it

`, v["PGACTL_API_SERVERS"], stats, filepath.Join(v["BIN_DIR"], "pgactl"), filepath.Join(v["DEMO_DIR"], "api-1.pid"))
	}
	if am := v["ALERTMANAGER_URL"]; am != "" {
		fmt.Fprintf(w, "Alertmanager %s receives the API's alerts (its web UI shows them):\n  %s alerts test   # a synthetic alert through the API to it\n\n",
			am, filepath.Join(v["BIN_DIR"], "pgactl"))
	}
	if interactive {
		fmt.Fprintln(w, "Opening the console; quit it (q) to stop the demo.")
	} else {
		fmt.Fprintln(w, "Press Ctrl-C to stop the demo and remove everything.")
	}
}

// tlsSummary says how the demo's connections are protected.
func tlsSummary(v map[string]string) string {
	if v["PGACTL_CA_FILE"] == "" {
		return "off (--plain-http)"
	}
	return "API on HTTPS, PostgreSQL sslmode=verify-full; throwaway CA " + v["PGACTL_CA_FILE"]
}

// apiLogs names the API's log files: one server's, or with --ha the servers' and haproxy's.
func apiLogs(v map[string]string) string {
	if v["HAPROXY_STATS_URL"] == "" {
		return filepath.Join(v["DEMO_DIR"], "api.log")
	}
	return filepath.Join(v["DEMO_DIR"], "{api-1,api-2,haproxy}.log")
}
