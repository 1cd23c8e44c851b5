package main

import (
	"io"
	"os"

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
			store, err := src.store()
			if err != nil {
				return err
			}
			if runID, err = runOrLatest(store, runID); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				f, err := os.Open(store.AuditPath(runID))
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				defer f.Close()
				_, err = io.Copy(w, f)
				return err
			}
			recs, err := store.ReadAudit(runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			for _, r := range recs {
				runbookcli.PrintAuditRecord(w, r)
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text|json (the JSON lines as stored)")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	return cmd
}
