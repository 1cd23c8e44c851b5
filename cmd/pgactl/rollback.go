package main

import (
	"github.com/spf13/cobra"
)

// rollbackPhase is the runbook phase `pgactl rollback` walks.
const rollbackPhase = "rollback"

func newRollbackCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Walk the rollback procedure: stop collectors, snapshot, restore the pre-deployment backup, verify",
		Long: `rollback runs the runbook's "rollback" phase with the same engine, flags, state and audit log as
pgactl runbook run rollback: stop (pause) the collectors, assess, notify, snapshot the current database,
restore the pre-deployment backup (destructive: type the step id, or --yes --confirm-destructive),
verify, resume the collectors, communicate, analyze.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRunbook(cmd, &f, rollbackPhase)
		},
	}
	f.register(cmd.Flags())
	return cmd
}
