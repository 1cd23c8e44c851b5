package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/cmd/pgactl/internal/runbookcli"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/runbook/shared"
)

func newRunbookStatusCmd() *cobra.Command {
	var src runbookSource
	var output, runID string
	var all, follow bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the latest run (or --run ID), step by step; --all lists every run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			runs, _, _, err := src.runs(cmd, "")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			if all {
				list, err := runs.List(ctx)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				if output == "json" {
					return writeJSON(w, list)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tTARGET\tENV\tSTATUS\tSTARTED\tBY")
				for _, r := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Target, r.Env, runbookcli.RunStatus(r),
						r.StartedAt.Local().Format(time.DateTime), r.Operator)
				}
				return tw.Flush()
			}
			if runID, err = runOrLatest(ctx, runs, runID); err != nil {
				return err
			}
			st, err := runs.Load(ctx, runID)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			if follow {
				return followRun(ctx, cmd, runs, st, output == "json")
			}
			if output == "json" {
				return writeJSON(w, st)
			}
			printRun(w, st)
			return nil
		},
	}
	src.registerRuns(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	cmd.Flags().BoolVar(&all, "all", false, "list every run")
	cmd.Flags().BoolVar(&follow, "follow", false, "shared runs: print the run again on every change (live, from the API's stream) until it ends")
	return cmd
}

// printRun prints one run, step by step.
func printRun(w io.Writer, st *runbook.RunState) {
	fmt.Fprintf(w, "run %s: %s\n  target %s, environment %s, runbook %s\n  started %s by %s, updated %s\n",
		st.ID, runbookcli.RunStatus(st), st.Target, st.Env, st.Runbook,
		st.StartedAt.Local().Format(time.DateTime), st.Operator, st.UpdatedAt.Local().Format(time.DateTime))
	if st.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", st.Error)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tSTATUS\tATTEMPTS\tDURATION\tAPPROVAL\tERROR")
	for _, s := range st.Steps {
		dur := ""
		if !s.StartedAt.IsZero() && !s.EndedAt.IsZero() {
			dur = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Phase, s.Step, s.Kind, s.Status, s.Attempts, dur,
			runbookcli.ApprovalText(s), runbook.FirstLine(s.Error))
	}
	tw.Flush()
	if st.Lease != nil {
		fmt.Fprintf(w, "\nexecuting: %s\n", runbookcli.Executor(st.Lease))
	}
	if st.Resumable() && st.Lease == nil {
		fmt.Fprintf(w, "\ncontinue with: pgactl runbook run --resume --run %s\n", st.ID)
	}
}

// followRun prints the run on every change until it ends (or ctx does): the whole run as a table
// (the screen cleared on a terminal), or one JSON document per line.
func followRun(ctx context.Context, cmd *cobra.Command, runs runbook.RunStore, st *runbook.RunState, asJSON bool) error {
	sh, ok := runs.(*shared.Store)
	if !ok {
		return exitcode.With(exitcode.Usage, errors.New("--follow needs a shared run (a local run is only seen on this machine: run status again)"))
	}
	w := cmd.OutOrStdout()
	tty := isTerminal(w)
	err := sh.Follow(ctx, st.ID, func(st *runbook.RunState) bool {
		switch {
		case asJSON:
			b, _ := json.Marshal(st)
			fmt.Fprintf(w, "%s\n", b)
		case tty:
			fmt.Fprint(w, "\x1b[H\x1b[2J")
			printRun(w, st)
		default:
			printRun(w, st)
			fmt.Fprintln(w)
		}
		return st.Status == runbook.StatusRunning
	})
	if ctx.Err() != nil {
		return nil
	}
	return exitFor(err)
}
