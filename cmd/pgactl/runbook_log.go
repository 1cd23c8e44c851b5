package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
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
				printAuditRecord(w, r)
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text|json (the JSON lines as stored)")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the latest)")
	return cmd
}

func printAuditRecord(w io.Writer, r runbook.AuditRecord) {
	at := r.Time.Local().Format(time.DateTime)
	switch r.Event {
	case runbook.AuditRunStarted, runbook.AuditRunResumed:
		fmt.Fprintf(w, "%s  %s  %s: %s, environment %s, runbook %s\n", at, r.Who, r.Event, r.Target, r.Env, r.Runbook)
	case runbook.AuditConfirmation:
		fmt.Fprintf(w, "%s  %s  %s/%s: %s prompt: %s\n", at, r.Who, r.Phase, r.Step, r.Prompt, r.Decision)
	case runbook.AuditStep:
		exit := ""
		if r.ExitCode != nil {
			exit = fmt.Sprintf(", exit %d", *r.ExitCode)
		}
		fmt.Fprintf(w, "%s  %s  %s/%s (%s, attempt %d): %s%s, %s\n", at, r.Who, r.Phase, r.Step, r.Kind, r.Attempt,
			r.Status, exit, r.End.Sub(r.Start).Round(time.Millisecond))
		if r.Command != "" {
			for _, l := range strings.Split(strings.TrimRight(r.Command, "\n"), "\n") {
				fmt.Fprintf(w, "    $ %s\n", l)
			}
		}
		if r.Output != "" {
			for _, l := range strings.Split(r.Output, "\n") {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
	case runbook.AuditRunFinished:
		fmt.Fprintf(w, "%s  %s  run finished: %s", at, r.Who, r.Status)
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintf(w, "%s  %s  %s\n", at, r.Who, r.Event)
	}
}
