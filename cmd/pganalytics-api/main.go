// Command pganalytics-api is the pgAnalytics API server: `serve` (the default), `migrate [up|status]`,
// `user add NAME --role ROLE` (password on stdin) and `version`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// env is the process environment the commands read, injectable for tests.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitcode.OK
	}
	fmt.Fprintf(e.stderr, "pganalytics-api: %s\n", oneLine(err))
	// Usage and configuration errors carry their code; anything else failed at run time
	// (database unreachable, listen failed).
	return exitcode.Of(err, exitcode.Failure)
}

// oneLine keeps a refusal to one line whatever the wrapped errors contain.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func newRootCmd(e env) *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:           "pganalytics-api",
		Short:         "pgAnalytics API server",
		Long:          "pganalytics-api serves the pgAnalytics API (serve is the default command).",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), configPath, e)
		},
	}
	root.PersistentFlags().StringVar(&configPath, "config", "", "TOML configuration file (environment variables override it)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.With(exitcode.Usage, err) })
	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Serve the API (the default command)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return serve(cmd.Context(), configPath, e)
			},
		},
		newMigrateCmd(&configPath, e),
		newUserCmd(&configPath, e),
		newAlertsCmd(e),
		newVersionCmd(e),
	)
	markArgErrorsAsUsage(root)
	return root
}

// markArgErrorsAsUsage makes cobra's argument errors (unknown subcommand, wrong count) usage errors,
// in every command of the tree.
func markArgErrorsAsUsage(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markArgErrorsAsUsage(sub)
	}
}
