package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/runbook"
)

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
