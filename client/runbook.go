package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pganalytics/pganalytics/internal/api"
)

// LeaseHeader carries a run's lease token on the writes of its executor.
const LeaseHeader = "X-Runbook-Lease"

// SetTeamRoles is PUT /users/{id}/team-roles: the user's complete set of team roles.
func (c *Client) SetTeamRoles(ctx context.Context, userID string, roles []string) (api.User, error) {
	var u api.User
	if userID == "" {
		return u, errEmptyID
	}
	resp, err := c.do(ctx, call{method: http.MethodPut, path: "/users/{id}/team-roles", pathID: userID,
		body: api.TeamRolesRequest{Roles: roles}, want: []int{http.StatusOK}})
	if err != nil {
		return u, err
	}
	return u, decode(resp, "user", &u)
}

// RunbookRuns is GET /runbook/runs, newest first; limit <= 0 takes the server's default.
func (c *Client) RunbookRuns(ctx context.Context, limit int) ([]api.RunbookRun, error) {
	var rr api.RunbookRunsResponse
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	if err := c.getJSON(ctx, "/runbook/runs", "", q, "runbook runs", &rr); err != nil {
		return nil, err
	}
	return rr.Runs, nil
}

// RunbookRun is GET /runbook/runs/{id}.
func (c *Client) RunbookRun(ctx context.Context, id string) (api.RunbookRun, error) {
	var run api.RunbookRun
	if id == "" {
		return run, errEmptyID
	}
	return run, c.getJSON(ctx, "/runbook/runs/{id}", id, nil, "runbook run", &run)
}

// CreateRunbookRun is POST /runbook/runs: the run as the server stored it, with the lease (and its
// token) granted to the caller.
func (c *Client) CreateRunbookRun(ctx context.Context, run api.RunbookRun, holder string) (api.RunbookRun, error) {
	var out api.RunbookRun
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/runbook/runs",
		body: api.RunbookCreateRequest{Run: run, Holder: holder}, want: []int{http.StatusCreated}})
	if err != nil {
		return out, err
	}
	if err := decode(resp, "runbook run", &out); err != nil {
		return out, err
	}
	if out.Lease == nil || out.Lease.Token == "" {
		return out, fmt.Errorf("runbook run: the server granted no lease")
	}
	return out, nil
}

// TakeRunbookLease is POST /runbook/runs/{id}/lease: take the lease (token "") or renew it.
func (c *Client) TakeRunbookLease(ctx context.Context, id, token, holder string) (api.RunbookLease, error) {
	var l api.RunbookLease
	if id == "" {
		return l, errEmptyID
	}
	cl := call{method: http.MethodPost, path: "/runbook/runs/{id}/lease", pathID: id,
		body: api.RunbookLeaseRequest{Holder: holder}, want: []int{http.StatusOK}}
	if token != "" {
		cl.header = map[string]string{LeaseHeader: token}
	}
	resp, err := c.do(ctx, cl)
	if err != nil {
		return l, err
	}
	return l, decode(resp, "lease", &l)
}

// ReleaseRunbookLease is DELETE /runbook/runs/{id}/lease.
func (c *Client) ReleaseRunbookLease(ctx context.Context, id, token string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/runbook/runs/{id}/lease", pathID: id,
		header: map[string]string{LeaseHeader: token}, want: []int{http.StatusNoContent}})
	return err
}

// SaveRunbookRun is PUT /runbook/runs/{id} under the lease: the state and the records that led to it.
func (c *Client) SaveRunbookRun(ctx context.Context, token string, run api.RunbookRun, records []json.RawMessage) error {
	if run.ID == "" {
		return errEmptyID
	}
	_, err := c.do(ctx, call{method: http.MethodPut, path: "/runbook/runs/{id}", pathID: run.ID, body: api.RunbookSave{Run: run, Records: records},
		header: map[string]string{LeaseHeader: token}, want: []int{http.StatusNoContent}})
	return err
}

// AppendRunbookRecord is POST /runbook/runs/{id}/records under the lease; record encodes to a JSON object.
func (c *Client) AppendRunbookRecord(ctx context.Context, id, token string, record any) error {
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/runbook/runs/{id}/records", pathID: id, body: record,
		header: map[string]string{LeaseHeader: token}, want: []int{http.StatusCreated}})
	return err
}

// RunbookRecords is GET /runbook/runs/{id}/records, oldest first.
func (c *Client) RunbookRecords(ctx context.Context, id string) ([]api.RunbookRecord, error) {
	var rr api.RunbookRecordsResponse
	if id == "" {
		return nil, errEmptyID
	}
	if err := c.getJSON(ctx, "/runbook/runs/{id}/records", id, nil, "runbook records", &rr); err != nil {
		return nil, err
	}
	return rr.Records, nil
}

// DecideApproval is POST /runbook/runs/{id}/approvals.
func (c *Client) DecideApproval(ctx context.Context, id string, req api.ApprovalRequest) (api.Approval, error) {
	var a api.Approval
	if id == "" {
		return a, errEmptyID
	}
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/runbook/runs/{id}/approvals", pathID: id, body: req,
		want: []int{http.StatusCreated}})
	if err != nil {
		return a, err
	}
	return a, decode(resp, "approval", &a)
}

// PendingApprovals is GET /runbook/approvals.
func (c *Client) PendingApprovals(ctx context.Context) ([]api.PendingApproval, error) {
	var pr api.PendingApprovalsResponse
	if err := c.getJSON(ctx, "/runbook/approvals", "", nil, "pending approvals", &pr); err != nil {
		return nil, err
	}
	return pr.Pending, nil
}

// StreamRunbookRun follows GET /runbook/runs/{id}/stream: fn gets the run now and after every change.
// It returns like StreamReplication: ctx's error, or a *StreamError to reconnect after.
func (c *Client) StreamRunbookRun(ctx context.Context, id string, fn func(api.RunbookRun)) error {
	if id == "" {
		return errEmptyID
	}
	return c.streamEvents(ctx, "/runbook/runs/"+url.PathEscape(id)+"/stream", func(ev sseEvent) error {
		if ev.Type != "run" {
			return nil
		}
		var run api.RunbookRun
		if err := json.Unmarshal([]byte(ev.Data), &run); err != nil {
			return fmt.Errorf("decode run event: %w", err)
		}
		fn(run)
		return nil
	})
}
