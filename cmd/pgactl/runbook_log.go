package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/cmd/pgactl/internal/runbookcli"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func newRunbookLogCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print a run's audit log (latest run, or --run ID)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			runs, runID, err := src.pickRun(cmd, runID)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			recs, err := runs.ReadAudit(ctx, runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				for _, r := range recs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			for _, r := range recs {
				runbookcli.PrintAuditRecord(w, r)
			}
			return nil
		},
	}
	src.registerRuns(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text|json (one record per line)")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	return cmd
}
