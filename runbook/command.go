package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

// defaultKillGrace is how long a command gets between SIGTERM and SIGKILL when its step times out or
// the run is cancelled.
const defaultKillGrace = 5 * time.Second

// shellPreamble makes a command step fail at its first failing command, failing pipeline or unset
// variable, as an operator following the runbook by hand would stop.
const shellPreamble = "set -euo pipefail\n"

// script is what bash runs for a command step: the preamble, the environment's commands as shell
// functions, then the step's own text.
func (e *Engine) script(s *Step) string {
	var b strings.Builder
	b.WriteString(shellPreamble)
	names := make([]string, 0, len(e.env.Commands))
	for name := range e.env.Commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s() {\n%s\n}\n", name, strings.TrimRight(e.env.Commands[name], "\n"))
	}
	b.WriteString(s.Run)
	if !strings.HasSuffix(s.Run, "\n") {
		b.WriteByte('\n')
	}
	return b.String()
}

// runCommand runs a command step with bash in its own process group, so that a timeout or a
// cancellation stops everything it started, not just bash. The environment's variables are exported
// to it; secrets reach the processes but never the command line or the log.
func (e *Engine) runCommand(ctx context.Context, runID string, s *Step, extra map[string]string, out *lineWriter) (int, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", e.script(s))
	runDir := e.store.RunDir(runID)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return -1, fmt.Errorf("run directory: %w", err)
	}
	env := map[string]string{VarRunID: runID, VarRunDir: runDir}
	for k, v := range extra {
		env[k] = v
	}
	cmd.Env = e.env.shellEnv(env)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = e.killGrace
	err := cmd.Run()
	if cmd.Process != nil && ctx.Err() != nil {
		// Whatever ignored SIGTERM, or was left in the background, goes now.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return code, nil
	case errors.Is(err, exec.ErrWaitDelay) && code == 0:
		// The script succeeded but left a process holding its output open; that is not a failure.
		out.println("(a background process kept the output open; stopped reading)")
		return code, nil
	case ctx.Err() != nil:
		return code, fmt.Errorf("command stopped: %w", ctx.Err())
	case errors.As(err, &exitErr):
		return code, fmt.Errorf("command exited with status %d", code)
	}
	return code, fmt.Errorf("run command: %w", err)
}

// checkScriptSyntax asks bash to parse the step's script without running it.
func (e *Engine) checkScriptSyntax(ctx context.Context, s *Step) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-n", "-c", e.script(s))
	outp, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(outp))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("shell syntax: %s", msg)
	}
	return nil
}
