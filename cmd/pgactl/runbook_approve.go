package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/runbook/shared"
)

// sharedRuns is src.runs for the commands that only make sense on the API.
func sharedRuns(cmd *cobra.Command, src *runbookSource, what string) (*shared.Store, error) {
	if src.local {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("%s needs the API: approvals are recorded there, never locally", what))
	}
	runs, _, _, err := src.runs(cmd, "")
	if err != nil {
		return nil, err
	}
	return runs.(*shared.Store), nil
}

func newRunbookApproveCmd() *cobra.Command {
	var (
		src     runbookSource
		comment string
		reject  bool
	)
	cmd := &cobra.Command{
		Use:   "approve RUN PHASE/STEP",
		Short: "Approve (or --reject) a step of a shared run that waits for approval",
		Long: `approve records your decision on a step that waits for approval (pgactl runbook approvals lists
them). You must hold one of the team roles the step names (approve = [...] in the runbook; an admin
sets them with pgactl team set); a destructive step cannot be approved by the user executing it. A
rejection stops the run. Every decision is in the API's audit log and the run's report.`,
		Example: `  pgactl runbook approve 20261204T101500Z-3fa2c1 production/migrate --comment "schema diff reviewed"
  pgactl runbook approve 20261204T101500Z-3fa2c1 production/migrate --reject --comment "not before the backup is verified"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := runbook.ParseTarget(args[1])
			if err != nil || t.Step == "" {
				return exitcode.With(exitcode.Usage, fmt.Errorf("name the step as PHASE/STEP, got %q", args[1]))
			}
			sh, err := sharedRuns(cmd, &src, "approve")
			if err != nil {
				return err
			}
			req := api.ApprovalRequest{Phase: t.Phase, Step: t.Step, Decision: api.ApprovalApproved, Comment: comment}
			if reject {
				req.Decision = api.ApprovalRejected
			}
			a, err := sh.Decide(cmd.Context(), args[0], req)
			if err != nil {
				return exitFor(err)
			}
			roles := "no team role"
			if len(a.Roles) > 0 {
				roles = strings.Join(a.Roles, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s/%s of run %s as %s (%s)\n", a.Decision, a.Phase, a.Step, a.RunID, a.User, roles)
			return nil
		},
	}
	src.registerRuns(cmd.Flags())
	cmd.Flags().StringVar(&comment, "comment", "", "why: kept with the approval and in the audit log")
	cmd.Flags().BoolVar(&reject, "reject", false, "reject the step: the run stops")
	return cmd
}

func newRunbookApprovalsCmd() *cobra.Command {
	var (
		src    runbookSource
		output string
	)
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List the steps of shared runs that wait for approval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			sh, err := sharedRuns(cmd, &src, "approvals")
			if err != nil {
				return err
			}
			pending, err := sh.Pending(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return writeJSON(w, api.PendingApprovalsResponse{Pending: pending})
			}
			if len(pending) == 0 {
				_, err := fmt.Fprintln(w, "no step waits for approval")
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTEP\tENV\tNEEDS\tEXECUTOR\tWAITING")
			for _, p := range pending {
				needs := strings.Join(p.Missing, ", ")
				if needs == "" {
					needs = "another operator"
				}
				if p.Destructive {
					needs += " (destructive: not " + p.Executor + ")"
				}
				fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\n", p.RunID, p.Phase, p.Step, p.Env, needs, p.Executor,
					time.Since(p.Since).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	src.registerRuns(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func newTeamCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "team",
		Short: "The deployment team's roles (deployment-lead, database-lead, …) held by API users",
		Long: `team shows and sets which API users hold the deployment plan's team roles: ` + strings.Join(api.TeamRoles, ", ") + `.
A runbook step with approve = ["database-lead"] waits until a holder of that role approves it. A user
may hold several roles. Setting roles needs an admin.`,
	}
	var conn apiFlags
	session := conn.session
	list := &cobra.Command{
		Use:   "list",
		Short: "Every user with its API role and team roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := session(cmd)
			if err != nil {
				return err
			}
			users, err := s.authed.Users(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tTEAM ROLES")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Username, u.Role, strings.Join(u.TeamRoles, ", "))
			}
			return tw.Flush()
		},
	}
	set := &cobra.Command{
		Use:     "set USER [ROLE...]",
		Short:   "Set a user's team roles (all of them; none clears them)",
		Example: "  pgactl team set alice deployment-lead database-lead\n  pgactl team set bob",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, r := range args[1:] {
				if !api.IsTeamRole(r) {
					return exitcode.With(exitcode.Usage, fmt.Errorf("unknown team role %q (want %s)", r, strings.Join(api.TeamRoles, ", ")))
				}
			}
			s, err := session(cmd)
			if err != nil {
				return err
			}
			users, err := s.authed.Users(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			for _, u := range users {
				if u.Username != args[0] {
					continue
				}
				u, err := s.authed.SetTeamRoles(cmd.Context(), u.ID, args[1:])
				if err != nil {
					return exitFor(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", u.Username, strings.Join(u.TeamRoles, ", "))
				return nil
			}
			return exitcode.With(exitcode.Usage, errors.New("no user "+args[0]))
		},
	}
	conn.register(cmd.PersistentFlags())
	cmd.AddCommand(list, set)
	return cmd
}
