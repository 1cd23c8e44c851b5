// Command pgactl is the terminal-first ops console for pgAnalytics: a Bubble Tea TUI for on-call plus
// scripted subcommands (smoke, runbook, rollback, replication, demo).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pgactl",
		Short:         "pgAnalytics ops console: replication, smoke checks, deployment runbook",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsole(cmd)
		},
	}
	root.AddCommand(
		newConsoleCmd(),
		newSmokeCmd(),
		newRunbookCmd(),
		newRollbackCmd(),
		newReplicationCmd(),
		newEventsCmd(),
		newTeamCmd(),
		newAlertsCmd(),
		newDemoCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "pgactl", buildinfo.String())
			},
		},
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.With(exitcode.Usage, err) })
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "pgactl:", err)
	os.Exit(exitcode.Of(err, exitcode.Usage))
}
