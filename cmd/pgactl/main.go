// Command pgactl is the terminal-first ops console for pgAnalytics: a Bubble Tea TUI for on-call plus
// scripted subcommands (smoke, runbook, rollback, replication, demo).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/buildinfo"
)

// Exit codes are a contract for scripts (ARCHITECTURE §7).
const (
	exitOK          = 0
	exitCheckFailed = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitAuth        = 4
)

// exitError carries a specific exit code out of a cobra RunE.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit wraps err so that main exits with code.
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

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
		newDemoCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "pgactl", buildinfo.String())
			},
		},
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withExit(exitUsage, err) })
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
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitUsage)
}
