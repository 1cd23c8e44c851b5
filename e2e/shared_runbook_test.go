package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

const sharedRunbook = `
title = "shared"
[[phase]]
id = "prod"
title = "Prod"

[[phase.step]]
id = "review"
title = "Leadership approval"
kind = "manual"
approve = ["deployment-lead"]

[[phase.step]]
id = "migrate"
title = "Migrate"
kind = "command"
destructive = true
approve = ["database-lead"]
run = 'echo "migrated by $PGACTL_RUN_ID" >> "$WORK/log"; echo "connecting with $DB_PASSWORD"'

[[phase]]
id = "long"
title = "Long"

[[phase.step]]
id = "wait"
title = "Wait for the go file"
kind = "command"
timeout = "5m"
run = 'while [ ! -f "$WORK/go" ]; do sleep 0.2; done; echo done >> "$WORK/log"'
`

const (
	teamPassword = "correct-horse-battery-staple"
	sharedSecret = "s3cret-never-stored-4711"
)

// sharedFixture writes the runbook and its environment and makes the team: the stack's admin is
// the deployment and database lead who executes; bob is a database lead; carol holds no team role.
func sharedFixture(t *testing.T, s *stack) (work string, files []string) {
	t.Helper()
	dir := t.TempDir()
	work = filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	rb, env := filepath.Join(dir, "runbook.toml"), filepath.Join(dir, "env.toml")
	if err := os.WriteFile(rb, []byte(sharedRunbook), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, []byte("loopback_only = true\n[vars]\nWORK = \""+work+"\"\nDB_PASSWORD = \""+sharedSecret+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := s.apiClient(t)
	ctx := t.Context()
	for _, u := range []string{"bob", "carol"} {
		if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: u, Password: teamPassword, Role: api.RoleOperator}); err != nil {
			t.Fatal(err)
		}
	}
	users, err := admin.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string][]string{s.env.Vars["PGACTL_USERNAME"]: {api.TeamDeploymentLead, api.TeamDatabaseLead}, "bob": {api.TeamDatabaseLead}}
	for _, u := range users {
		if r, ok := roles[u.Username]; ok {
			if _, err := admin.SetTeamRoles(ctx, u.ID, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	return work, []string{"--file", rb, "--env", env}
}

// asUser is pgactl's environment for user on a machine of its own (its own state directory).
func (s *stack) asUser(t *testing.T, user string) []string {
	extra := []string{"PGACTL_STATE_DIR=" + t.TempDir()}
	if user != "" {
		extra = append(extra, "PGACTL_USERNAME="+user, "PGACTL_PASSWORD="+teamPassword)
	}
	return s.cliEnv(t, extra...)
}

// startPgactl starts pgactl in the background; wait returns its exit code and output.
func startPgactl(t *testing.T, env []string, args ...string) (cmd *exec.Cmd, wait func() (int, string)) {
	t.Helper()
	cmd = exec.Command(bin("pgactl"), args...)
	cmd.Env = env
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var code int
	go func() {
		defer close(done)
		if err := cmd.Wait(); err != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, func() (int, string) {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("pgactl %s did not end:\n%s", strings.Join(args, " "), out.String())
		}
		return code, out.String()
	}
}

// waitPending waits until step ref of a run waits for approval and returns the run id.
func waitPending(t *testing.T, c *client.Client, ref string) string {
	t.Helper()
	var id string
	waitFor(t, time.Minute, ref+" waiting for approval", func(ctx context.Context) (bool, string) {
		pending, err := c.PendingApprovals(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pending {
			if p.Phase+"/"+p.Step == ref {
				id = p.RunID
				return true, ""
			}
		}
		return false, "pending: " + strings.Repeat("x", len(pending))
	})
	return id
}

// TestSharedRunTwoPersonApproval runs a phase whose steps need approval: the executor may approve
// the step of a role it holds, but not its own destructive step; a user without the role cannot;
// a second database lead can, and the run goes on. A rejection stops the next run.
func TestSharedRunTwoPersonApproval(t *testing.T) {
	s := startStack(t, 5*time.Second, false)
	work, files := sharedFixture(t, s)
	admin := s.apiClient(t)
	executor, bob, carol := s.asUser(t, ""), s.asUser(t, "bob"), s.asUser(t, "carol")

	_, wait := startPgactl(t, executor, append([]string{"runbook", "run", "prod", "--yes", "--confirm-destructive"}, files...)...)
	id := waitPending(t, admin, "prod/review")

	if _, errOut, code := runPgactl(t, time.Minute, bob, "runbook", "approve", id, "prod/review"); code == 0 || !strings.Contains(errOut, "deployment-lead") {
		t.Fatalf("bob (no deployment lead) approved the review: exit %d\n%s", code, errOut)
	}
	if out, errOut, code := runPgactl(t, time.Minute, executor, "runbook", "approve", id, "prod/review", "--comment", "go for production"); code != 0 {
		t.Fatalf("the deployment lead's approval: exit %d\n%s%s", code, out, errOut)
	}

	waitPending(t, admin, "prod/migrate")
	_, errOut, code := runPgactl(t, time.Minute, executor, "runbook", "approve", id, "prod/migrate")
	if code == 0 || !strings.Contains(errOut, "another user must approve") {
		t.Fatalf("the executor approved its own destructive step: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := runPgactl(t, time.Minute, carol, "runbook", "approve", id, "prod/migrate"); code == 0 || !strings.Contains(errOut, "database-lead") {
		t.Fatalf("carol (no database lead) approved: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(work, "log")); err == nil {
		t.Fatal("the destructive step ran before its approval")
	}
	listOut, _, _ := runPgactl(t, time.Minute, carol, "runbook", "approvals")
	if !strings.Contains(listOut, "prod/migrate") || !strings.Contains(listOut, "database-lead") {
		t.Errorf("approvals list:\n%s", listOut)
	}
	if out, errOut, code := runPgactl(t, time.Minute, bob, "runbook", "approve", id, "prod/migrate", "--comment", "schema diff reviewed"); code != 0 {
		t.Fatalf("bob's approval: exit %d\n%s%s", code, out, errOut)
	}
	approved := time.Now()
	waitFor(t, time.Minute, "migrate to run once approved", func(ctx context.Context) (bool, string) {
		_, err := os.Stat(filepath.Join(work, "log"))
		return err == nil, "not yet"
	})
	t.Logf("the approved step ran %.2f s after the approval was recorded", time.Since(approved).Seconds())
	if code, out := wait(); code != 0 {
		t.Fatalf("the run: exit %d\n%s", code, out)
	}
	if log, _ := os.ReadFile(filepath.Join(work, "log")); !strings.Contains(string(log), "migrated by "+id) {
		t.Errorf("migrate did not run once approved: %q", log)
	}

	// The step printed the environment's secret: the run on the API holds it redacted, nowhere whole.
	stored, err := admin.RunbookRecords(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	run, err := admin.RunbookRun(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	all := fmt.Sprintf("%+v %+v", stored, run)
	for _, r := range stored {
		all += string(r.Record)
	}
	if strings.Contains(all, sharedSecret) || !strings.Contains(all, "connecting with") {
		t.Errorf("the secret reached the API (or the output did not): %s", all)
	}

	report, errOut, code := runPgactl(t, time.Minute, carol, "runbook", "report", "--run", id, "-o", "markdown")
	if code != 0 {
		t.Fatalf("report: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"approved by bob", "schema diff reviewed", "go for production"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	entries, err := admin.Audit(t.Context(), 200)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "runbook_") {
			seen[e.Action+map[bool]string{true: "", false: " refused"}[e.Success]]++
		}
	}
	if seen["runbook_approved"] != 2 || seen["runbook_approved refused"] < 3 || seen["runbook_run_started"] != 1 {
		t.Errorf("audit log: %v", seen)
	}

	t.Run("rejection stops the run", func(t *testing.T) {
		_, wait := startPgactl(t, executor, append([]string{"runbook", "run", "prod/migrate", "--yes", "--confirm-destructive"}, files...)...)
		id := waitPending(t, admin, "prod/migrate")
		if _, errOut, code := runPgactl(t, time.Minute, bob, "runbook", "approve", id, "prod/migrate", "--reject", "--comment", "not before the backup is verified"); code != 0 {
			t.Fatalf("bob's rejection: exit %d\n%s", code, errOut)
		}
		code, out := wait()
		if code == 0 || !strings.Contains(out, "rejected by bob") {
			t.Fatalf("rejected run: exit %d\n%s", code, out)
		}
		st, _, _ := runPgactl(t, time.Minute, carol, "runbook", "status", "--run", id)
		if !strings.Contains(st, "aborted") || !strings.Contains(st, "not before the backup is verified") {
			t.Errorf("status after the rejection:\n%s", st)
		}
		if log, _ := os.ReadFile(filepath.Join(work, "log")); strings.Count(string(log), "migrated") != 1 {
			t.Errorf("the rejected step ran: %q", log)
		}
	})
}

// TestSharedRunLeaseAndResume: while one pgactl executes a run, another cannot take it; once the
// first is killed and its lease expires, a second pgactl on another machine (another user, another
// state directory) resumes the run from the API and finishes it.
func TestSharedRunLeaseAndResume(t *testing.T) {
	s := startStack(t, 5*time.Second, false)
	work, files := sharedFixture(t, s)
	admin := s.apiClient(t)
	executor, bob := s.asUser(t, ""), s.asUser(t, "bob")

	first, _ := startPgactl(t, executor, append([]string{"runbook", "run", "long", "--yes"}, files...)...)
	var id string
	waitFor(t, time.Minute, "the run executing", func(ctx context.Context) (bool, string) {
		runs, err := admin.RunbookRuns(ctx, 5)
		if err != nil || len(runs) == 0 {
			return false, "no run yet"
		}
		id = runs[0].ID
		return runs[0].Lease != nil && runs[0].Steps[0].Status == "running", runs[0].Status
	})

	_, errOut, code := runPgactl(t, time.Minute, bob, append([]string{"runbook", "run", "--resume", "--run", id, "--yes"}, files...)...)
	if code == 0 || !strings.Contains(errOut, "being executed") {
		t.Fatalf("a second executor took the running run: exit %d\n%s", code, errOut)
	}

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := os.WriteFile(filepath.Join(work, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, 90*time.Second, "bob resuming once the lease expired", func(ctx context.Context) (bool, string) {
		o, e, code := runPgactl(t, time.Minute, bob, append([]string{"runbook", "run", "--resume", "--run", id, "--yes"}, files...)...)
		out = o + e
		return code == 0, strings.TrimSpace(e)
	})
	t.Logf("resumed %.1f s after the kill", time.Since(killed).Seconds())
	if !strings.Contains(out, "resuming run "+id) {
		t.Errorf("resume output:\n%s", out)
	}
	run, err := admin.RunbookRun(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != "succeeded" || run.Lease != nil || run.Steps[0].Attempts != 2 || !strings.HasPrefix(run.Operator, s.env.Vars["PGACTL_USERNAME"]) {
		t.Errorf("resumed run: %+v", run)
	}
	recs, err := admin.RunbookRecords(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	resumedBy := ""
	for _, r := range recs {
		if strings.Contains(string(r.Record), `"event":"run_resumed"`) {
			resumedBy = r.User
		}
	}
	if resumedBy != "bob" {
		t.Errorf("the resume was recorded for %q, want bob", resumedBy)
	}
}
