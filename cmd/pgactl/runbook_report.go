package main

import (
	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newRunbookReportCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "A run as a document: Markdown (the retrospective), JUnit XML (for CI) or JSON",
		Long: `report writes the latest run (or --run ID) as a document: every step with its status, who ran
and who confirmed it, when, how long, and the last lines of its output (redacted, as in the audit
log). -o markdown for the Phase 4D retrospective, -o junit for a CI system (a failed step is a
failed test case), -o json for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "markdown", "junit", "json"); err != nil {
				return err
			}
			runs, runID, err := src.pickRun(cmd, runID)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := runs.Load(ctx, runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			audit, err := runs.ReadAudit(ctx, runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			rep := runbook.BuildReport(st, audit)
			w := cmd.OutOrStdout()
			switch output {
			case "junit":
				return rep.WriteJUnit(w)
			case "json":
				return rep.WriteJSON(w)
			}
			return rep.WriteMarkdown(w)
		},
	}
	src.registerRuns(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "markdown", "output format: markdown|junit|json")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	return cmd
}
