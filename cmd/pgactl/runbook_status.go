package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/cmd/pgactl/internal/runbookcli"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newRunbookStatusCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the latest run (or --run ID), step by step; --all lists every run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			store, err := src.store()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if all {
				runs, err := store.List()
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				if output == "json" {
					return writeJSON(w, runs)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tTARGET\tENV\tSTATUS\tSTARTED\tBY")
				for _, r := range runs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Target, r.Env, runbookcli.RunStatus(store, r),
						r.StartedAt.Local().Format(time.DateTime), r.Operator)
				}
				return tw.Flush()
			}
			var st *runbook.RunState
			if runID != "" {
				st, err = store.Load(runID)
			} else {
				st, err = store.Latest()
			}
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			if output == "json" {
				return writeJSON(w, st)
			}
			fmt.Fprintf(w, "run %s: %s\n  target %s, environment %s, runbook %s\n  started %s by %s, updated %s\n",
				st.ID, runbookcli.RunStatus(store, st), st.Target, st.Env, st.Runbook,
				st.StartedAt.Local().Format(time.DateTime), st.Operator, st.UpdatedAt.Local().Format(time.DateTime))
			if st.Error != "" {
				fmt.Fprintf(w, "  error: %s\n", st.Error)
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "STEP\tKIND\tSTATUS\tATTEMPTS\tDURATION\tERROR")
			for _, s := range st.Steps {
				dur := ""
				if !s.StartedAt.IsZero() && !s.EndedAt.IsZero() {
					dur = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%s\t%s\n", s.Phase, s.Step, s.Kind, s.Status, s.Attempts, dur, runbook.FirstLine(s.Error))
			}
			tw.Flush()
			if st.Resumable() && !store.InProgress(st.ID) {
				fmt.Fprintf(w, "\ncontinue with: pgactl runbook run --resume --run %s\n", st.ID)
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	cmd.Flags().BoolVar(&all, "all", false, "list every run")
	return cmd
}
