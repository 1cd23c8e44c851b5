package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

func sharedRun() api.RunbookRun {
	now := time.Now().UTC()
	return api.RunbookRun{
		Runbook: "default", Title: "t", Env: "staging", Target: "production", Operator: "alice@laptop",
		Status: api.RunbookRunning, StartedAt: now, UpdatedAt: now,
		Steps: []api.RunbookStep{
			{Phase: "production", Step: "validation", Title: "Validate", Kind: "manual", Approve: []string{api.TeamDeploymentLead}, Status: "pending"},
			{Phase: "production", Step: "migrate", Title: "Migrate", Kind: "command", Destructive: true, Approve: []string{api.TeamDatabaseLead}, Status: "pending"},
		},
	}
}

// TestSharedRunApprovals walks the approval rules through the API: a step needing approval cannot
// start without it, the executor cannot approve its own destructive step, only a holder of the
// role can approve, a rejection is final for the round, and a lease keeps a second executor out.
func TestSharedRunApprovals(t *testing.T) {
	ts := startServer(t)
	alice := ts.userToken("alice", api.RoleOperator)
	bob := ts.userToken("bob", api.RoleOperator)
	carol := ts.userToken("carol", api.RoleOperator)
	admin := ts.userToken("root", api.RoleAdmin)
	viewer := ts.userToken("vic", api.RoleViewer)
	users := map[string]string{}
	var list api.UsersResponse
	ts.do(req{method: "GET", path: "/api/v1/users", token: admin}).decode(t, &list)
	for _, u := range list.Users {
		users[u.Username] = u.ID
	}
	setRoles := func(user string, roles ...string) {
		t.Helper()
		mustStatus(t, ts.do(req{method: "PUT", path: "/api/v1/users/" + users[user] + "/team-roles", token: admin,
			body: api.TeamRolesRequest{Roles: roles}}), http.StatusOK)
	}
	setRoles("alice", api.TeamDeploymentLead, api.TeamDatabaseLead)
	setRoles("bob", api.TeamDatabaseLead)
	setRoles("carol", api.TeamSecurityLead)
	mustStatus(t, ts.do(req{method: "PUT", path: "/api/v1/users/" + users["bob"] + "/team-roles", token: admin,
		body: api.TeamRolesRequest{Roles: []string{"ceo"}}}), http.StatusBadRequest)

	run := sharedRun()
	mustStatus(t, ts.do(req{method: "POST", path: "/api/v1/runbook/runs", token: viewer,
		body: api.RunbookCreateRequest{Run: run, Holder: "vic"}}), http.StatusForbidden)
	r := ts.do(req{method: "POST", path: "/api/v1/runbook/runs", token: alice, body: api.RunbookCreateRequest{Run: run, Holder: "alice@laptop"}})
	mustStatus(t, r, http.StatusCreated)
	var created api.RunbookRun
	r.decode(t, &created)
	if created.Lease == nil || created.Lease.Token == "" || created.StartedBy != "alice" {
		t.Fatalf("created run: %+v", created)
	}
	id, lease := created.ID, created.Lease.Token
	runPath := "/api/v1/runbook/runs/" + id
	save := func(token, leaseTok string, run api.RunbookRun) response {
		return ts.do(req{method: "PUT", path: runPath, token: token, body: api.RunbookSave{Run: run}, header: map[string]string{leaseHeader: leaseTok}})
	}
	decide := func(token, step, decision string) response {
		return ts.do(req{method: "POST", path: runPath + "/approvals", token: token,
			body: api.ApprovalRequest{Phase: "production", Step: step, Decision: decision, Comment: "checked"}})
	}

	t.Run("lease conflict", func(t *testing.T) {
		r := ts.do(req{method: "POST", path: runPath + "/lease", token: bob, body: api.RunbookLeaseRequest{Holder: "bob@desk"}})
		mustStatus(t, r, http.StatusConflict)
		if !strings.Contains(r.errorMessage(), "alice") {
			t.Errorf("conflict should name the holder: %s", r.errorMessage())
		}
		mustStatus(t, save(bob, "not-the-lease", run), http.StatusConflict)
		mustStatus(t, ts.do(req{method: "PUT", path: runPath, token: bob, body: api.RunbookSave{Run: run}}), http.StatusConflict)
	})

	t.Run("cannot start without approval", func(t *testing.T) {
		run.Steps[0].Status = "succeeded"
		r := save(alice, lease, run)
		mustStatus(t, r, http.StatusForbidden)
		run.Steps[0].Status = "pending"
	})

	t.Run("approve a role step", func(t *testing.T) {
		mustStatus(t, decide(bob, "validation", api.ApprovalApproved), http.StatusConflict) // not waiting yet
		run.Steps[0].Status, run.Steps[0].ApprovalRound = api.RunbookAwaitingApproval, 1
		mustStatus(t, save(alice, lease, run), http.StatusNoContent)
		var pending api.PendingApprovalsResponse
		ts.do(req{method: "GET", path: "/api/v1/runbook/approvals", token: viewer}).decode(t, &pending)
		if len(pending.Pending) != 1 || pending.Pending[0].Step != "validation" || pending.Pending[0].Executor != "alice" {
			t.Fatalf("pending: %+v", pending)
		}
		r := decide(bob, "validation", api.ApprovalApproved)
		mustStatus(t, r, http.StatusForbidden) // bob is no deployment lead
		if !strings.Contains(r.errorMessage(), "deployment-lead") {
			t.Errorf("refusal should name the role: %s", r.errorMessage())
		}
		mustStatus(t, decide(viewer, "validation", api.ApprovalApproved), http.StatusForbidden)
		// Not destructive: the executor may approve a step of a role it holds.
		mustStatus(t, decide(alice, "validation", api.ApprovalApproved), http.StatusCreated)
		var got api.RunbookRun
		ts.do(req{method: "GET", path: runPath, token: viewer}).decode(t, &got)
		if got.Steps[0].Approval != api.ApprovalApproved || len(got.Steps[0].Approvals) != 1 || got.Lease == nil {
			t.Fatalf("after approval: %+v", got.Steps[0])
		}
		run.Steps[0].Status = "succeeded"
		mustStatus(t, save(alice, lease, run), http.StatusNoContent)
	})

	t.Run("two-person rule", func(t *testing.T) {
		run.Steps[1].Status, run.Steps[1].ApprovalRound = api.RunbookAwaitingApproval, 1
		mustStatus(t, save(alice, lease, run), http.StatusNoContent)
		r := decide(alice, "migrate", api.ApprovalApproved)
		mustStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.errorMessage(), "another user") {
			t.Errorf("two-person refusal: %s", r.errorMessage())
		}
		mustStatus(t, decide(carol, "migrate", api.ApprovalApproved), http.StatusForbidden) // no database lead
		run.Steps[1].Status = "running"
		mustStatus(t, save(alice, lease, run), http.StatusForbidden)
		mustStatus(t, decide(bob, "migrate", api.ApprovalApproved), http.StatusCreated)
		mustStatus(t, save(alice, lease, run), http.StatusNoContent)
	})

	t.Run("rejection", func(t *testing.T) {
		run.Steps[1].Status, run.Steps[1].ApprovalRound = api.RunbookAwaitingApproval, 2
		mustStatus(t, save(alice, lease, run), http.StatusNoContent)
		mustStatus(t, decide(bob, "migrate", api.ApprovalRejected), http.StatusCreated)
		mustStatus(t, decide(bob, "migrate", api.ApprovalApproved), http.StatusConflict)
		run.Steps[1].Status = "running"
		mustStatus(t, save(alice, lease, run), http.StatusForbidden)
	})

	t.Run("records and audit", func(t *testing.T) {
		mustStatus(t, ts.do(req{method: "POST", path: runPath + "/records", token: alice, body: map[string]any{"event": "step", "output": "ok"},
			header: map[string]string{leaseHeader: lease}}), http.StatusCreated)
		mustStatus(t, ts.do(req{method: "POST", path: runPath + "/records", token: alice, body: map[string]any{"event": "x\u0000"},
			header: map[string]string{leaseHeader: lease}}), http.StatusBadRequest)
		run.Steps[1].Status = "pending" // the rejected step, as the engine leaves it
		mustStatus(t, ts.do(req{method: "PUT", path: runPath, token: alice, header: map[string]string{leaseHeader: lease},
			body: api.RunbookSave{Run: run, Records: []json.RawMessage{[]byte(`{"event":"a"}`), []byte(`{"event":"b"}`)}}}), http.StatusNoContent)
		mustStatus(t, ts.do(req{method: "PUT", path: runPath, token: alice, header: map[string]string{leaseHeader: lease},
			body: api.RunbookSave{Run: run, Records: []json.RawMessage{[]byte(`[1]`)}}}), http.StatusBadRequest)
		var recs api.RunbookRecordsResponse
		ts.do(req{method: "GET", path: runPath + "/records", token: viewer}).decode(t, &recs)
		if len(recs.Records) != 3 || recs.Records[0].User != "alice" || !strings.Contains(string(recs.Records[2].Record), `"b"`) {
			t.Fatalf("records: %+v", recs)
		}
		var audit api.AuditResponse
		ts.do(req{method: "GET", path: "/api/v1/audit?limit=100", token: admin}).decode(t, &audit)
		seen := map[string]int{}
		for _, e := range audit.Entries {
			seen[e.Action+"/"+map[bool]string{true: "ok", false: "refused"}[e.Success]]++
		}
		for _, want := range []string{"runbook_run_started/ok", "runbook_approved/ok", "runbook_approved/refused",
			"runbook_rejected/ok", "runbook_lease_refused/refused", "team_roles_changed/ok", "runbook_step_unapproved/refused"} {
			if seen[want] == 0 {
				t.Errorf("audit log lacks %s (has %v)", want, seen)
			}
		}
	})

	var bobLease api.RunbookLease
	t.Run("release and resume elsewhere", func(t *testing.T) {
		mustStatus(t, ts.do(req{method: "DELETE", path: runPath + "/lease", token: alice, header: map[string]string{leaseHeader: lease}}), http.StatusNoContent)
		r := ts.do(req{method: "POST", path: runPath + "/lease", token: bob, body: api.RunbookLeaseRequest{Holder: "bob@desk"}})
		mustStatus(t, r, http.StatusOK)
		r.decode(t, &bobLease)
		mustStatus(t, save(alice, lease, run), http.StatusConflict) // alice's lease is gone
		mustStatus(t, save(bob, bobLease.Token, run), http.StatusNoContent)
	})

	t.Run("stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hreq, _ := http.NewRequestWithContext(ctx, "GET", ts.url+runPath+"/stream", nil)
		hreq.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := ts.client.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream status %d", resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		events := 0
		for sc.Scan() && events < 2 {
			if sc.Text() == "event: run" {
				events++
				if events == 1 { // a change after the first event is streamed
					go ts.do(req{method: "POST", path: runPath + "/records", token: bob, body: map[string]any{"event": "note"},
						header: map[string]string{leaseHeader: bobLease.Token}})
				}
			}
		}
		if events < 2 {
			t.Fatalf("got %d run events, want the current state and a change", events)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			name string
			r    req
			want int
		}{
			{"unknown run", req{method: "GET", path: "/api/v1/runbook/runs/20260101T000000Z-abcdef", token: viewer}, 404},
			{"malformed id", req{method: "GET", path: "/api/v1/runbook/runs/..", token: viewer}, 404},
			{"no steps", req{method: "POST", path: "/api/v1/runbook/runs", token: alice, body: api.RunbookCreateRequest{Run: api.RunbookRun{Env: "e", Target: "t", Status: "running"}, Holder: "a"}}, 400},
			{"unknown team role", req{method: "POST", path: "/api/v1/runbook/runs", token: alice, body: api.RunbookCreateRequest{Run: func() api.RunbookRun {
				r := sharedRun()
				r.Steps[0].Approve = []string{"cfo"}
				return r
			}(), Holder: "a"}}, 400},
			{"no holder", req{method: "POST", path: "/api/v1/runbook/runs", token: alice, body: api.RunbookCreateRequest{Run: sharedRun()}}, 400},
			{"bad decision", req{method: "POST", path: runPath + "/approvals", token: bob, body: api.ApprovalRequest{Phase: "production", Step: "migrate", Decision: "maybe"}}, 400},
			{"unknown step", req{method: "POST", path: runPath + "/approvals", token: bob, body: api.ApprovalRequest{Phase: "production", Step: "nope", Decision: "approved"}}, 404},
			{"bad limit", req{method: "GET", path: "/api/v1/runbook/runs?limit=0", token: viewer}, 400},
		} {
			t.Run(c.name, func(t *testing.T) { mustStatus(t, ts.do(c.r), c.want) })
		}
	})
}
