package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
				printStep(w, s.Phase, s.Step)
			}
			return nil
		},
	}
	src.registerFile(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the runbook file itself (start your own runbook from it)")
	return cmd
}

// printStep writes one step the way an operator reads it.
func printStep(w io.Writer, phase string, s *runbook.Step) {
	fmt.Fprintf(w, "%s/%s  %s\n", phase, s.ID, s.Title)
	kind := string(s.Kind)
	if s.Kind == runbook.KindCheck {
		kind += " " + string(s.Check)
	}
	if s.Destructive {
		kind += ", DESTRUCTIVE (asks to type its id)"
	}
	if t := s.EffectiveTimeout(); t > 0 {
		kind += ", timeout " + t.String()
	}
	if s.Retries > 0 {
		kind += fmt.Sprintf(", %d retries", s.Retries)
	}
	fmt.Fprintf(w, "  kind: %s\n", kind)
	indent := func(label, text string) {
		if strings.TrimSpace(text) == "" {
			return
		}
		fmt.Fprintf(w, "  %s:\n", label)
		for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	indent("about", s.Description)
	for _, item := range s.Checklist {
		fmt.Fprintf(w, "    [ ] %s\n", item)
	}
	indent("run", s.Run)
	if s.SQL != "" {
		db := s.Database
		if db == "" {
			db = runbook.DefaultDatabase
		}
		indent("sql on "+db, s.SQL)
		if len(s.Params) > 0 {
			fmt.Fprintf(w, "  params: %s\n", strings.Join(s.Params, ", "))
		}
	}
	if x := s.Expect; x != nil {
		if x.Rows != nil {
			fmt.Fprintf(w, "  expect rows %s\n", x.Rows)
		}
		if x.Value != nil {
			fmt.Fprintf(w, "  expect value %s\n", x.Value)
		}
		if x.Equals != nil {
			b, _ := json.Marshal(x.Equals)
			fmt.Fprintf(w, "  expect rows equal %s\n", b)
		}
	}
	for _, kv := range [][2]string{{"url", s.URL}, {"database", s.Database}, {"role", s.Role}, {"name", s.Name},
		{"hostname", s.Hostname}, {"username", s.Username}, {"secret", s.Secret}, {"password", s.Password}} {
		if kv[1] != "" && !(kv[0] == "database" && s.SQL != "") {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
	}
	if len(s.Headers) > 0 {
		fmt.Fprintf(w, "  headers: %s\n", strings.Join(s.Headers, "; "))
	}
}
