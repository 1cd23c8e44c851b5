package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/deploy"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/server/alerting"
)

func newAlertsCmd(e env) *cobra.Command {
	alerts := &cobra.Command{Use: "alerts", Short: "Check alert rules, list what they can read", Args: cobra.NoArgs}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check an alert rules file as the server loads it (the shipped rules without FILE)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path, data := "deploy/alerts.toml (built in)", deploy.AlertRules
			if len(args) == 1 {
				path = args[0]
				var err error
				if data, err = os.ReadFile(path); err != nil {
					return exitcode.With(exitcode.Usage, fmt.Errorf("read alert rules: %w", err))
				}
			}
			rs, err := alerting.Parse(path, data)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			fmt.Fprintf(e.stdout, "%s: %d rules OK\n", path, len(rs.Rules))
			return nil
		},
	}
	quantities := &cobra.Command{
		Use:   "quantities",
		Short: "List the quantities alert rules can read, with their scope",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUANTITY\tSCOPE\tMEANING")
			for _, q := range alerting.Quantities() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", q.Name, q.Scope, q.Help)
			}
			return tw.Flush()
		},
	}
	alerts.AddCommand(check, quantities)
	return alerts
}
