package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// Shared runbook runs (docs/runbook.md, shared runs).
const (
	// leaseHeader carries the lease token of the executing pgactl.
	leaseHeader = "X-Runbook-Lease"
	// runbookLeaseTTL is how long a lease lasts unless renewed (pgactl renews it every 10 s): a
	// pgactl killed mid-step lets another operator resume after this long.
	runbookLeaseTTL = 30 * time.Second
	// runbookBodyMax bounds a run's state or one record (output excerpts are capped well below).
	runbookBodyMax = 1 << 20
	// runbookStreamPoll is how often a run's live stream looks for a change; polling the store keeps
	// every API server behind a load balancer equally up to date.
	runbookStreamPoll = 500 * time.Millisecond

	maxRunSteps   = 500
	maxRunText    = 256
	maxRunError   = 16 << 10
	maxApprovalLn = 2000
	maxRunRecords = 100
)

var (
	runIDPattern   = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)
	runNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	runStatuses    = []string{"pending", api.RunbookRunning, api.RunbookSucceeded, "failed", "skipped", "aborted", "interrupted", api.RunbookAwaitingApproval}
)

// runbookError maps the store's refusals of a shared-run operation to their answer.
func (s *Server) runbookError(ctx context.Context, op string, err error) *httpError {
	switch {
	case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrRunFinished),
		errors.Is(err, store.ErrNotWaiting):
		return newError(http.StatusConflict, codeConflict, "%s", err)
	case errors.Is(err, store.ErrNotApprover), errors.Is(err, store.ErrTwoPerson), errors.Is(err, store.ErrNotApproved):
		return newError(http.StatusForbidden, codeForbidden, "%s", err)
	case errors.Is(err, store.ErrStepNotInRun):
		return newError(http.StatusNotFound, codeNotFound, "%s", err)
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, codeNotFound, "run not found")
	}
	return s.storeFailure(ctx, op, err)
}

// runPathID is the {id} of a run route; a malformed one is simply not found.
func runPathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !runIDPattern.MatchString(id) {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "run not found"))
		return "", false
	}
	return id, true
}

// noNUL refuses a request whose JSON holds a NUL character, which the store (jsonb, text) cannot keep.
func noNUL(v any) *httpError {
	b, err := json.Marshal(v)
	if err != nil || bytes.Contains(b, []byte(`\u0000`)) {
		return newError(http.StatusBadRequest, codeValidation, "NUL characters are not allowed")
	}
	return nil
}

// validateRun checks a run's state as the executor sends it.
func validateRun(run *api.RunbookRun) *httpError {
	bad := func(format string, args ...any) *httpError {
		return newError(http.StatusBadRequest, codeValidation, format, args...)
	}
	for name, v := range map[string]string{"runbook": run.Runbook, "title": run.Title, "env": run.Env, "target": run.Target, "operator": run.Operator} {
		if len(v) > maxRunText*4 {
			return bad("%s is longer than %d bytes", name, maxRunText*4)
		}
	}
	if run.Target == "" || run.Env == "" {
		return bad("a run needs its target and env")
	}
	if !slices.Contains(runStatuses, run.Status) {
		return bad("unknown run status %q", truncate(run.Status, 32))
	}
	if len(run.Error) > maxRunError {
		return bad("error is longer than %d bytes", maxRunError)
	}
	if len(run.Steps) == 0 || len(run.Steps) > maxRunSteps {
		return bad("a run has 1 to %d steps", maxRunSteps)
	}
	seen := make(map[string]bool, len(run.Steps))
	for _, st := range run.Steps {
		ref := st.Phase + "/" + st.Step
		switch {
		case !runNamePattern.MatchString(st.Phase) || !runNamePattern.MatchString(st.Step):
			return bad("step %q: phase and step ids are 1-64 characters of [a-z0-9_-]", truncate(ref, 130))
		case seen[ref]:
			return bad("step %s appears twice", ref)
		case !slices.Contains(runStatuses, st.Status):
			return bad("step %s: unknown status %q", ref, truncate(st.Status, 32))
		case len(st.Title) > maxRunText || len(st.Kind) > 32:
			return bad("step %s: title or kind too long", ref)
		case len(st.Error) > maxRunError:
			return bad("step %s: error is longer than %d bytes", ref, maxRunError)
		case st.Attempts < 0 || st.ApprovalRound < 0 || st.Attempts > 1_000_000 || st.ApprovalRound > 1_000_000:
			return bad("step %s: attempts and approval_round are counts", ref)
		}
		for _, role := range st.Approve {
			if !api.IsTeamRole(role) {
				return bad("step %s: unknown team role %q (want one of %v)", ref, truncate(role, 64), api.TeamRoles)
			}
		}
		seen[ref] = true
	}
	return noNUL(run)
}

// validRecord checks one audit record: a JSON object the store can keep.
func validRecord(rec json.RawMessage) *httpError {
	var obj map[string]any
	if json.Unmarshal(rec, &obj) != nil || obj == nil {
		return newError(http.StatusBadRequest, codeValidation, "a record is a JSON object")
	}
	return noNUL(obj)
}

func validHolder(holder string) *httpError {
	if holder == "" || len(holder) > maxRunText {
		return newError(http.StatusBadRequest, codeValidation, "holder names who executes the run (1-%d bytes)", maxRunText)
	}
	return noNUL(holder)
}

// handleRunbookRuns is GET /api/v1/runbook/runs?limit= (viewer): newest first.
func (s *Server) handleRunbookRuns(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "limit")
	if e != nil {
		writeErr(w, e)
		return
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxRunbookRuns {
			writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "limit must be 1-%d", store.MaxRunbookRuns))
			return
		}
		limit = n
	}
	runs, err := s.store.RunbookRuns(r.Context(), limit)
	if err != nil {
		writeErr(w, s.runbookError(r.Context(), "runbook_runs", err))
		return
	}
	if runs == nil {
		runs = []api.RunbookRun{}
	}
	writeJSON(w, http.StatusOK, api.RunbookRunsResponse{Runs: runs})
}

// handleCreateRunbookRun is POST /api/v1/runbook/runs (operator): a new shared run, its lease
// granted to the caller.
func (s *Server) handleCreateRunbookRun(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.RunbookCreateRequest
	if e := decodeBody(w, r, runbookBodyMax, &req); e != nil {
		writeErr(w, e)
		return
	}
	if e := validateRun(&req.Run); e != nil {
		writeErr(w, e)
		return
	}
	if e := validHolder(req.Holder); e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	run, lease, err := s.store.CreateRunbookRun(ctx, req.Run, p.name, req.Holder, runbookLeaseTTL)
	if err != nil {
		writeErr(w, s.runbookError(ctx, "create_runbook_run", err))
		return
	}
	_ = s.audit(r, p.actor(), "runbook_run_started", "run:"+run.ID, true,
		map[string]any{"target": run.Target, "env": run.Env, "runbook": run.Runbook, "holder": req.Holder})
	run.Lease.Token = lease.Token
	writeJSON(w, http.StatusCreated, run)
}

// handleRunbookRun is GET /api/v1/runbook/runs/{id} (viewer).
func (s *Server) handleRunbookRun(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	run, err := s.store.RunbookRun(r.Context(), id)
	if err != nil {
		writeErr(w, s.runbookError(r.Context(), "runbook_run", err))
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// leaseToken is the X-Runbook-Lease header of a write to a run.
func leaseToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := r.Header.Get(leaseHeader)
	if tok == "" || len(tok) > 128 {
		writeErr(w, newError(http.StatusConflict, codeConflict, "writing to a run needs its lease (%s header): take it with POST /api/v1/runbook/runs/{id}/lease", leaseHeader))
		return "", false
	}
	return tok, true
}

// handleSaveRunbookRun is PUT /api/v1/runbook/runs/{id} (operator, lease holder): the run's state
// after a change; renews the lease.
func (s *Server) handleSaveRunbookRun(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	tok, ok := leaseToken(w, r)
	if !ok {
		return
	}
	var req api.RunbookSave
	if e := decodeBody(w, r, runbookBodyMax, &req); e != nil {
		writeErr(w, e)
		return
	}
	run := req.Run
	if e := validateRun(&run); e != nil {
		writeErr(w, e)
		return
	}
	if len(req.Records) > maxRunRecords {
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "at most %d records per save", maxRunRecords))
		return
	}
	for _, rec := range req.Records {
		if e := validRecord(rec); e != nil {
			writeErr(w, e)
			return
		}
	}
	ctx := r.Context()
	if err := s.store.SaveRunbookRun(ctx, id, tok, run, req.Records, p.name, runbookLeaseTTL); err != nil {
		e := s.runbookError(ctx, "save_runbook_run", err)
		if errors.Is(err, store.ErrNotApproved) {
			_ = s.audit(r, p.actor(), "runbook_step_unapproved", "run:"+id, false, map[string]any{"reason": err.Error()})
		}
		writeErr(w, e)
		return
	}
	switch run.Status {
	case api.RunbookRunning, api.RunbookAwaitingApproval:
	default:
		_ = s.audit(r, p.actor(), "runbook_run_finished", "run:"+id, run.Status == api.RunbookSucceeded,
			map[string]any{"status": run.Status, "error": truncate(run.Error, 400)})
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleRunbookLease is POST /api/v1/runbook/runs/{id}/lease (operator): take the run's lease to
// resume it (from any machine), or renew it with the X-Runbook-Lease header. 409 while another
// operator holds a live lease.
func (s *Server) handleRunbookLease(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	var req api.RunbookLeaseRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	if e := validHolder(req.Holder); e != nil {
		writeErr(w, e)
		return
	}
	tok := r.Header.Get(leaseHeader)
	if len(tok) > 128 {
		tok = ""
	}
	ctx := r.Context()
	lease, err := s.store.TakeRunbookLease(ctx, id, tok, p.name, req.Holder, runbookLeaseTTL)
	if err != nil {
		e := s.runbookError(ctx, "runbook_lease", err)
		if errors.Is(err, store.ErrLeaseHeld) {
			_ = s.audit(r, p.actor(), "runbook_lease_refused", "run:"+id, false, map[string]any{"reason": err.Error(), "holder": req.Holder})
		}
		writeErr(w, e)
		return
	}
	if lease.Token != tok {
		_ = s.audit(r, p.actor(), "runbook_run_resumed", "run:"+id, true, map[string]any{"holder": req.Holder})
	}
	out := lease.RunbookLease
	out.Token = lease.Token
	writeJSON(w, http.StatusOK, out)
}

// handleReleaseRunbookLease is DELETE /api/v1/runbook/runs/{id}/lease (operator, lease holder).
func (s *Server) handleReleaseRunbookLease(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	tok, ok := leaseToken(w, r)
	if !ok {
		return
	}
	if err := s.store.ReleaseRunbookLease(r.Context(), id, tok); err != nil {
		writeErr(w, s.runbookError(r.Context(), "release_runbook_lease", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleRunbookRecords is GET /api/v1/runbook/runs/{id}/records (viewer): the run's audit records.
func (s *Server) handleRunbookRecords(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	recs, err := s.store.RunbookRecords(r.Context(), id)
	if err != nil {
		writeErr(w, s.runbookError(r.Context(), "runbook_records", err))
		return
	}
	if recs == nil {
		recs = []api.RunbookRecord{}
	}
	writeJSON(w, http.StatusOK, api.RunbookRecordsResponse{Records: recs})
}

// handleAppendRunbookRecord is POST /api/v1/runbook/runs/{id}/records (operator, lease holder): one
// audit record, a JSON object.
func (s *Server) handleAppendRunbookRecord(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	tok, ok := leaseToken(w, r)
	if !ok {
		return
	}
	var rec json.RawMessage
	if e := decodeBody(w, r, runbookBodyMax, &rec); e != nil {
		writeErr(w, e)
		return
	}
	if e := validRecord(rec); e != nil {
		writeErr(w, e)
		return
	}
	if err := s.store.AppendRunbookRecord(r.Context(), id, tok, p.name, rec); err != nil {
		writeErr(w, s.runbookError(r.Context(), "append_runbook_record", err))
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// handleRunbookApproval is POST /api/v1/runbook/runs/{id}/approvals (operator): approve or reject a
// step that waits for approval. Every decision, and every refused one, is in the audit log.
func (s *Server) handleRunbookApproval(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	var req api.ApprovalRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	switch {
	case req.Decision != api.ApprovalApproved && req.Decision != api.ApprovalRejected:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "decision must be approved or rejected"))
		return
	case !runNamePattern.MatchString(req.Phase) || !runNamePattern.MatchString(req.Step):
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "phase and step are the step's ids"))
		return
	case len(req.Comment) > maxApprovalLn:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "comment is longer than %d bytes", maxApprovalLn))
		return
	}
	if e := noNUL(req); e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	target := fmt.Sprintf("run:%s step:%s/%s", id, req.Phase, req.Step)
	a, err := s.store.DecideApproval(ctx, id, req, p.name)
	if err != nil {
		e := s.runbookError(ctx, "runbook_approval", err)
		_ = s.audit(r, p.actor(), "runbook_"+req.Decision, target, false, map[string]any{"reason": e.message, "comment": req.Comment})
		writeErr(w, e)
		return
	}
	_ = s.audit(r, p.actor(), "runbook_"+req.Decision, target, true,
		map[string]any{"comment": req.Comment, "roles": a.Roles, "round": a.Round})
	writeJSON(w, http.StatusCreated, a)
}

// handlePendingApprovals is GET /api/v1/runbook/approvals (viewer): every step waiting for approval.
func (s *Server) handlePendingApprovals(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	pending, err := s.store.PendingApprovals(r.Context())
	if err != nil {
		writeErr(w, s.runbookError(r.Context(), "pending_approvals", err))
		return
	}
	writeJSON(w, http.StatusOK, api.PendingApprovalsResponse{Pending: pending})
}

// handleRunbookStream is GET /api/v1/runbook/runs/{id}/stream (viewer): Server-Sent Events, one
// `run` event (the run as GET answers it) now and after every change, heartbeats in between.
func (s *Server) handleRunbookStream(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := runPathID(w, r)
	if !ok {
		return
	}
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	run, err := s.store.RunbookRun(ctx, id)
	if err != nil {
		writeErr(w, s.runbookError(ctx, "runbook_run", err))
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil { // the server's ReadTimeout would end the stream
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "streaming unsupported"))
		return
	}
	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteLimit)); err != nil {
			return false
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sendRun := func(run api.RunbookRun) bool {
		b, err := json.Marshal(run)
		return err == nil && send([]byte(fmt.Sprintf("event: run\ndata: %s\n\n", b)))
	}
	if !send([]byte("retry: "+strconv.Itoa(retryHintMs)+"\n\n")) || !sendRun(run) {
		return
	}
	version := run.Version
	poll := time.NewTicker(runbookStreamPoll)
	defer poll.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.shutdown:
			send(drainHint)
			return
		case <-poll.C:
		}
		v, err := s.store.RunbookVersion(ctx, id)
		if err != nil {
			return // the client reconnects
		}
		if v != version {
			if run, err = s.store.RunbookRun(ctx, id); err != nil || !sendRun(run) {
				return
			}
			version, lastWrite = run.Version, time.Now()
			continue
		}
		if time.Since(lastWrite) >= heartbeatEvery {
			if !send(heartbeat) {
				return
			}
			lastWrite = time.Now()
		}
	}
}

// handleSetTeamRoles is PUT /api/v1/users/{id}/team-roles (admin): the user's complete set of team
// roles (deployment-lead, database-lead, infrastructure-lead, collector-lead, security-lead,
// sre-lead).
func (s *Server) handleSetTeamRoles(w http.ResponseWriter, r *http.Request, p *principal) {
	raw, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	uid, ok := store.CanonicalID(raw)
	if !ok {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "not found"))
		return
	}
	var req api.TeamRolesRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	roles := []string{}
	for _, role := range req.Roles {
		if !api.IsTeamRole(role) {
			writeErr(w, newError(http.StatusBadRequest, codeValidation, "unknown team role %q (want one of %v)", truncate(role, 64), api.TeamRoles))
			return
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, uid)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "user_by_id", err))
		return
	}
	target := "user:" + u.Username
	if !s.auditFirst(w, r, p.actor(), "team_roles_changed", target, map[string]any{"roles": roles}) {
		return
	}
	if err := s.store.SetTeamRoles(ctx, uid, roles); err != nil {
		e := s.storeFailure(ctx, "set_team_roles", err)
		s.auditFailed(r, p.actor(), "team_roles_changed", target, e)
		writeErr(w, e)
		return
	}
	slices.Sort(roles)
	u.TeamRoles = roles
	writeJSON(w, http.StatusOK, u)
}
