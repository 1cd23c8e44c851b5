package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/cmd/pgactl/internal/runbookcli"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newRunbookShowCmd() *cobra.Command {
	var src runbookSource
	var output string
	var raw bool
	cmd := &cobra.Command{
		Use:   "show [PHASE|PHASE/STEP]",
		Short: "Show steps in full (or, with --raw, the runbook's TOML source)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if raw {
				if src.file == "" {
					_, err := w.Write(runbook.DefaultRunbookTOML())
					return err
				}
				data, err := os.ReadFile(src.file)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				_, err = w.Write(data)
				return err
			}
			rb, err := src.runbook()
			if err != nil {
				return err
			}
			var targets []runbook.Target
			if len(args) == 1 {
				t, err := runbook.ParseTarget(args[0])
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				targets = append(targets, t)
			} else {
				for _, p := range rb.Phases {
					targets = append(targets, runbook.Target{Phase: p.ID})
				}
			}
			type shown struct {
				Phase string        `json:"phase"`
				Step  *runbook.Step `json:"step"`
			}
			var all []shown
			for _, t := range targets {
				p, steps, err := rb.Select(t)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				for _, s := range steps {
					all = append(all, shown{Phase: p.ID, Step: s})
				}
			}
			if output == "json" {
				return writeJSON(w, all)
			}
			for i, s := range all {
				if i > 0 {
					fmt.Fprintln(w)
				}
				runbookcli.PrintStep(w, s.Phase, s.Step)
			}
			return nil
		},
	}
	src.registerFile(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the runbook file itself (start your own runbook from it)")
	return cmd
}
