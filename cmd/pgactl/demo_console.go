package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/demo"
)

// runDemoConsole opens the console on the demo stack. The console resolves its context from the
// environment like every pgactl command, so the demo's credentials are exported first.
func runDemoConsole(_ context.Context, cmd *cobra.Command, env demo.Env) error {
	for _, k := range demo.EnvKeys(env.Vars) {
		if err := os.Setenv(k, env.Vars[k]); err != nil {
			return fmt.Errorf("export %s: %w", k, err)
		}
	}
	return runConsole(cmd)
}
