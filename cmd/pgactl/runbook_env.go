package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newRunbookEnvCmd() *cobra.Command {
	var src runbookSource
	var output string
	var raw bool
	cmd := &cobra.Command{
		Use:   "env [NAME|FILE]",
		Short: "Show an environment's variables (secrets hidden) and commands; --raw prints the file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			w := cmd.OutOrStdout()
			if raw {
				name = envName(name)
				if runbook.IsFileRef(name) {
					data, err := os.ReadFile(name)
					if err != nil {
						return exitcode.With(exitcode.Usage, err)
					}
					_, err = w.Write(data)
					return err
				}
				data, ok := runbook.EnvironmentTOML(name)
				if !ok {
					return exitcode.With(exitcode.Usage, fmt.Errorf("no shipped environment %q (shipped: %s)", name, strings.Join(runbook.EnvironmentNames(), ", ")))
				}
				_, err := w.Write(data)
				return err
			}
			store, err := src.store()
			if err != nil {
				return err
			}
			env, err := loadEnv(name, store.Dir)
			if err != nil {
				return err
			}
			type variable struct {
				Name   string `json:"name"`
				Value  string `json:"value,omitempty"`
				Secret bool   `json:"secret,omitempty"`
				Error  string `json:"error,omitempty"`
			}
			var vars []variable
			for _, n := range env.VarNames() {
				v, err := env.Lookup(n)
				switch {
				case err != nil:
					vars = append(vars, variable{Name: n, Error: err.Error()})
				case env.IsSecret(n):
					vars = append(vars, variable{Name: n, Secret: true})
				default:
					vars = append(vars, variable{Name: n, Value: env.Redact(v)})
				}
			}
			if output == "json" {
				cmds := make(map[string]string, len(env.Commands))
				for k, v := range env.Commands {
					cmds[k] = env.Redact(v)
				}
				return writeJSON(w, struct {
					Name         string            `json:"name"`
					Description  string            `json:"description,omitempty"`
					LoopbackOnly bool              `json:"loopback_only"`
					Variables    []variable        `json:"variables"`
					Commands     map[string]string `json:"commands"`
				}{env.Name, env.Description, env.LoopbackOnly, vars, cmds})
			}
			fmt.Fprintf(w, "environment %s: %s\n", env.Name, env.Description)
			if env.LoopbackOnly {
				fmt.Fprintln(w, "loopback only: checks and SQL reach this machine only")
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, v := range vars {
				switch {
				case v.Error != "":
					fmt.Fprintf(tw, "%s\tUNRESOLVED: %s\n", v.Name, v.Error)
				case v.Secret:
					fmt.Fprintf(tw, "%s\t(secret, set)\n", v.Name)
				default:
					fmt.Fprintf(tw, "%s\t%s\n", v.Name, v.Value)
				}
			}
			tw.Flush()
			if len(env.Commands) > 0 {
				names := make([]string, 0, len(env.Commands))
				for n := range env.Commands {
					names = append(names, n)
				}
				sort.Strings(names)
				fmt.Fprintf(w, "\ncommands: %s\n", strings.Join(names, ", "))
			}
			return nil
		},
	}
	src.registerState(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the environment file itself (start your own from it)")
	return cmd
}
