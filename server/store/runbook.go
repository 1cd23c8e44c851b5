package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Refusals of the shared-run operations; the wrapped message says why, for the API to show.
var (
	ErrLeaseHeld    = errors.New("run is being executed by someone else")
	ErrLeaseLost    = errors.New("lease lost")
	ErrRunFinished  = errors.New("run already succeeded")
	ErrNotWaiting   = errors.New("step is not waiting for approval")
	ErrNotApprover  = errors.New("not an approver of this step")
	ErrTwoPerson    = errors.New("two-person rule")
	ErrNotApproved  = errors.New("step not approved")
	ErrStepNotInRun = errors.New("step is not in the run")
)

// MaxRunbookRuns bounds GET /api/v1/runbook/runs.
const MaxRunbookRuns = 200

// RunbookLease is what a lease operation grants: the token (shown once) and the lease.
type RunbookLease struct {
	api.RunbookLease
	Token string
}

// SetTeamRoles replaces a user's team roles. ErrNotFound; ErrInvalid for a role not in api.TeamRoles.
func (s *Store) SetTeamRoles(ctx context.Context, userID string, roles []string) error {
	uid, err := parseID(userID)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if !api.IsTeamRole(r) {
			return fmt.Errorf("%w: unknown team role %q", ErrInvalid, r)
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, uid).Scan(&one); err != nil {
			return notFound(err, "select user")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM team_roles WHERE user_id = $1`, uid); err != nil {
			return fmt.Errorf("clear team roles: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO team_roles (user_id, role) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`,
			uid, roles); err != nil {
			return fmt.Errorf("set team roles: %w", err)
		}
		return nil
	})
}

// TeamRolesOf returns the team roles of the user named username (none for an unknown user).
func (s *Store) TeamRolesOf(ctx context.Context, username string) ([]string, error) {
	return teamRoles(ctx, s.pool, username)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func teamRoles(ctx context.Context, q querier, username string) ([]string, error) {
	var roles []string
	err := q.QueryRow(ctx, `
		SELECT coalesce(array_agg(t.role ORDER BY t.role), '{}') FROM team_roles t JOIN users u ON u.id = t.user_id
		WHERE u.username = $1`, username).Scan(&roles)
	if err != nil {
		return nil, fmt.Errorf("select team roles: %w", err)
	}
	return roles, nil
}

func newLeaseToken() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("lease token: %w", err)
	}
	token = hex.EncodeToString(b[:])
	return token, tokenHash(token), nil
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func newRunID(now time.Time) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// storedState is the executor's state without what the server computes on read.
func storedState(run api.RunbookRun) ([]byte, error) {
	run.StartedBy, run.Version, run.Lease = "", 0, nil
	steps := slices.Clone(run.Steps)
	for i := range steps {
		steps[i].Approval, steps[i].Approvals = "", nil
	}
	run.Steps = steps
	return json.Marshal(run)
}

// CreateRunbookRun stores a new run started by user and grants user the lease for ttl.
func (s *Store) CreateRunbookRun(ctx context.Context, run api.RunbookRun, user, holder string, ttl time.Duration) (api.RunbookRun, RunbookLease, error) {
	token, hash, err := newLeaseToken()
	if err != nil {
		return run, RunbookLease{}, err
	}
	for range 5 {
		if run.ID, err = newRunID(time.Now()); err != nil {
			return run, RunbookLease{}, err
		}
		state, err := storedState(run)
		if err != nil {
			return run, RunbookLease{}, fmt.Errorf("encode run: %w", err)
		}
		var expires time.Time
		err = s.pool.QueryRow(ctx, `
			INSERT INTO runbook_runs (id, started_by, status, state, lease_token_hash, lease_user, lease_holder, lease_expires_at)
			VALUES ($1, $2, $3, $4, $5, $2, $6, now() + $7::interval) RETURNING lease_expires_at`,
			run.ID, user, run.Status, state, hash, holder, ttl.String()).Scan(&expires)
		if pgCode(err) == codeUniqueViolation {
			continue
		}
		if err != nil {
			return run, RunbookLease{}, fmt.Errorf("insert run: %w", err)
		}
		run.StartedBy, run.Version = user, 1
		lease := api.RunbookLease{User: user, Holder: holder, ExpiresAt: expires}
		run.Lease = &lease
		return run, RunbookLease{RunbookLease: lease, Token: token}, nil
	}
	return run, RunbookLease{}, errors.New("insert run: no free run id")
}

// TakeRunbookLease grants user the run's lease for ttl: renewed when token is the current lease's,
// taken when nobody holds an unexpired lease (a resume, maybe from another machine). ErrNotFound,
// ErrRunFinished, ErrLeaseHeld (saying by whom and until when).
func (s *Store) TakeRunbookLease(ctx context.Context, id, token, user, holder string, ttl time.Duration) (RunbookLease, error) {
	var lease RunbookLease
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			status                string
			hash                  []byte
			leaseUser, leaseHoldr pgtype.Text
			expires               pgtype.Timestamptz
			live                  bool
		)
		err := tx.QueryRow(ctx, `
			SELECT status, lease_token_hash, lease_user, lease_holder, lease_expires_at, coalesce(lease_expires_at > now(), false)
			FROM runbook_runs WHERE id = $1 FOR UPDATE`, id).Scan(&status, &hash, &leaseUser, &leaseHoldr, &expires, &live)
		if err != nil {
			return notFound(err, "select run")
		}
		renew := token != "" && hash != nil && slices.Equal(hash, tokenHash(token))
		switch {
		case status == api.RunbookSucceeded:
			return fmt.Errorf("%w: start a new run", ErrRunFinished)
		case !renew && live:
			return fmt.Errorf("%w: %s (%s) holds it until %s", ErrLeaseHeld, leaseUser.String, leaseHoldr.String,
				expires.Time.UTC().Format(time.RFC3339))
		}
		newHash := hash
		lease.Token = token
		if !renew {
			if lease.Token, newHash, err = newLeaseToken(); err != nil {
				return err
			}
		}
		lease.User, lease.Holder = user, holder
		return tx.QueryRow(ctx, `
			UPDATE runbook_runs SET lease_token_hash = $2, lease_user = $3, lease_holder = $4,
				lease_expires_at = now() + $5::interval, version = version + 1
			WHERE id = $1 RETURNING lease_expires_at`, id, newHash, user, holder, ttl.String()).Scan(&lease.ExpiresAt)
	})
	return lease, err
}

// ReleaseRunbookLease gives the lease up; a token that is not the current lease's is ignored.
func (s *Store) ReleaseRunbookLease(ctx context.Context, id, token string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE runbook_runs SET lease_token_hash = NULL, lease_user = NULL, lease_holder = NULL, lease_expires_at = NULL,
			version = version + 1
		WHERE id = $1 AND lease_token_hash = $2`, id, tokenHash(token))
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// leasedRun locks the run for its lease holder: ErrNotFound, ErrLeaseLost when token is not the
// current lease's (another operator took it after it expired).
func leasedRun(ctx context.Context, tx pgx.Tx, id, token string) (api.RunbookRun, error) {
	var (
		state []byte
		hash  []byte
		user  pgtype.Text
	)
	err := tx.QueryRow(ctx, `SELECT state, lease_token_hash, lease_user FROM runbook_runs WHERE id = $1 FOR UPDATE`, id).
		Scan(&state, &hash, &user)
	if err != nil {
		return api.RunbookRun{}, notFound(err, "select run")
	}
	if hash == nil || !slices.Equal(hash, tokenHash(token)) {
		return api.RunbookRun{}, fmt.Errorf("%w: another operator resumed run %s after this lease expired; stop", ErrLeaseLost, id)
	}
	var run api.RunbookRun
	if err := json.Unmarshal(state, &run); err != nil {
		return api.RunbookRun{}, fmt.Errorf("decode run: %w", err)
	}
	run.Lease = &api.RunbookLease{User: user.String}
	return run, nil
}

// SaveRunbookRun replaces the run's state for the lease holder and renews the lease for ttl. A step
// that needs approval may only start (or, manual, be done) in an approved round: the executor
// cannot skip the approval by saving a state that says so. ErrLeaseLost, ErrNotApproved.
func (s *Store) SaveRunbookRun(ctx context.Context, id, token string, run api.RunbookRun, records []json.RawMessage, user string, ttl time.Duration) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, err := leasedRun(ctx, tx, id, token)
		if err != nil {
			return err
		}
		approvals, err := runApprovals(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := checkApprovalsHeld(old, run, approvals); err != nil {
			return err
		}
		run.ID = id
		state, err := storedState(run)
		if err != nil {
			return fmt.Errorf("encode run: %w", err)
		}
		_, err = tx.Exec(ctx, `
			UPDATE runbook_runs SET state = $2, status = $3, updated_at = now(), version = version + 1,
				lease_expires_at = now() + $4::interval
			WHERE id = $1`, id, state, run.Status, ttl.String())
		if err != nil {
			return fmt.Errorf("save run: %w", err)
		}
		if len(records) > 0 {
			raw := make([]string, len(records))
			for i, r := range records {
				raw[i] = string(r)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO runbook_records (run_id, by_user, record) SELECT $1, $2, r::jsonb FROM unnest($3::text[]) WITH ORDINALITY AS t(r, n) ORDER BY n`,
				id, user, raw); err != nil {
				return fmt.Errorf("append records: %w", err)
			}
		}
		return nil
	})
}

// needsApproval: a step with approvers, and every destructive step (two people).
func needsApproval(st api.RunbookStep) bool { return len(st.Approve) > 0 || st.Destructive }

// checkApprovalsHeld refuses a state in which a step needing approval started without one.
func checkApprovalsHeld(old, run api.RunbookRun, approvals []api.Approval) error {
	prev := make(map[string]api.RunbookStep, len(old.Steps))
	for _, st := range old.Steps {
		prev[st.Phase+"/"+st.Step] = st
	}
	for _, st := range run.Steps {
		ref := st.Phase + "/" + st.Step
		was, known := prev[ref]
		if known {
			// What must be approved is fixed when the run starts.
			st.Approve, st.Destructive = was.Approve, was.Destructive
		}
		if !needsApproval(st) || st.Status == was.Status {
			continue
		}
		switch st.Status {
		case "running", "succeeded", "failed":
		default:
			continue
		}
		if was.Status != api.RunbookAwaitingApproval && was.Status != "running" && was.Status != "failed" {
			return fmt.Errorf("%w: %s must wait for approval before it runs", ErrNotApproved, ref)
		}
		if st.ApprovalRound != was.ApprovalRound {
			return fmt.Errorf("%w: %s changed its approval round while running", ErrNotApproved, ref)
		}
		if state, _ := approvalOutcome(was, approvals); state != api.ApprovalApproved {
			return fmt.Errorf("%w: %s is %s", ErrNotApproved, ref, state)
		}
	}
	return nil
}

// approvalOutcome is the step's approval in its current round: rejected when anyone rejected,
// approved when every required role has approved (a destructive step without roles: anyone),
// else pending with the roles still missing.
func approvalOutcome(st api.RunbookStep, approvals []api.Approval) (state string, missing []string) {
	approvedBy := map[string]bool{}
	anyone := false
	for _, a := range approvals {
		if a.Phase != st.Phase || a.Step != st.Step || a.Round != st.ApprovalRound {
			continue
		}
		if a.Decision == api.ApprovalRejected {
			return api.ApprovalRejected, nil
		}
		anyone = true
		for _, r := range a.Roles {
			approvedBy[r] = true
		}
	}
	for _, r := range st.Approve {
		if !approvedBy[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 || (len(st.Approve) == 0 && !anyone) {
		return api.ApprovalPending, missing
	}
	return api.ApprovalApproved, nil
}

// AppendRunbookRecord adds one audit record (JSON) for the lease holder. ErrLeaseLost.
func (s *Store) AppendRunbookRecord(ctx context.Context, id, token, user string, record json.RawMessage) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := leasedRun(ctx, tx, id, token); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO runbook_records (run_id, by_user, record) VALUES ($1, $2, $3)`,
			id, user, []byte(record)); err != nil {
			return fmt.Errorf("append record: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE runbook_runs SET version = version + 1 WHERE id = $1`, id)
		return err
	})
}

// RunbookRecords returns a run's records, oldest first. ErrNotFound.
func (s *Store) RunbookRecords(ctx context.Context, id string) ([]api.RunbookRecord, error) {
	if _, err := s.RunbookVersion(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, by_user, record FROM runbook_records WHERE run_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("select records: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.RunbookRecord, error) {
		var r api.RunbookRecord
		var raw []byte
		err := row.Scan(&r.ID, &r.At, &r.User, &raw)
		r.Record = raw
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("select records: %w", err)
	}
	return recs, nil
}

// RunbookVersion is the run's change counter, for the live stream. ErrNotFound.
func (s *Store) RunbookVersion(ctx context.Context, id string) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM runbook_runs WHERE id = $1`, id).Scan(&v); err != nil {
		return 0, notFound(err, "select run")
	}
	return v, nil
}

func runApprovals(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, id string) ([]api.Approval, error) {
	rows, err := q.Query(ctx, `
		SELECT id, run_id, phase, step, attempt, decision, by_user, roles, comment, at
		FROM runbook_approvals WHERE run_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("select approvals: %w", err)
	}
	as, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.Approval, error) {
		var a api.Approval
		err := row.Scan(&a.ID, &a.RunID, &a.Phase, &a.Step, &a.Round, &a.Decision, &a.User, &a.Roles, &a.Comment, &a.At)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("select approvals: %w", err)
	}
	return as, nil
}

const runColumns = `id, started_by, state, version, lease_user, lease_holder, lease_expires_at, coalesce(lease_expires_at > now(), false)`

func scanRun(row pgx.Row) (api.RunbookRun, error) {
	var (
		run                    api.RunbookRun
		id, startedBy          string
		state                  []byte
		version                int64
		leaseUser, leaseHolder pgtype.Text
		leaseExpires           pgtype.Timestamptz
		live                   bool
	)
	if err := row.Scan(&id, &startedBy, &state, &version, &leaseUser, &leaseHolder, &leaseExpires, &live); err != nil {
		return run, err
	}
	if err := json.Unmarshal(state, &run); err != nil {
		return run, fmt.Errorf("decode run %s: %w", id, err)
	}
	run.ID, run.StartedBy, run.Version = id, startedBy, version
	if live {
		run.Lease = &api.RunbookLease{User: leaseUser.String, Holder: leaseHolder.String, ExpiresAt: leaseExpires.Time}
	}
	return run, nil
}

// RunbookRun returns a run with its lease (when live) and, on every step that needs approval, the
// approvals and the current round's outcome. ErrNotFound.
func (s *Store) RunbookRun(ctx context.Context, id string) (api.RunbookRun, error) {
	run, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runbook_runs WHERE id = $1`, id))
	if err != nil {
		return run, notFound(err, "select run")
	}
	approvals, err := runApprovals(ctx, s.pool, id)
	if err != nil {
		return run, err
	}
	annotate(&run, approvals)
	return run, nil
}

func annotate(run *api.RunbookRun, approvals []api.Approval) {
	for i := range run.Steps {
		st := &run.Steps[i]
		if !needsApproval(*st) {
			continue
		}
		for _, a := range approvals {
			if a.Phase == st.Phase && a.Step == st.Step {
				st.Approvals = append(st.Approvals, a)
			}
		}
		if st.ApprovalRound > 0 {
			st.Approval, _ = approvalOutcome(*st, approvals)
		}
	}
}

// RunbookRuns returns the newest runs first (at most limit, capped at MaxRunbookRuns).
func (s *Store) RunbookRuns(ctx context.Context, limit int) ([]api.RunbookRun, error) {
	if limit <= 0 || limit > MaxRunbookRuns {
		limit = MaxRunbookRuns
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runbook_runs ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.RunbookRun, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// PendingApprovals lists every step of a running run that waits for approval, oldest first.
func (s *Store) PendingApprovals(ctx context.Context) ([]api.PendingApproval, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runbook_runs WHERE status = 'running' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.RunbookRun, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	pending := []api.PendingApproval{}
	for _, run := range runs {
		approvals, err := runApprovals(ctx, s.pool, run.ID)
		if err != nil {
			return nil, err
		}
		for _, st := range run.Steps {
			if st.Status != api.RunbookAwaitingApproval {
				continue
			}
			state, missing := approvalOutcome(st, approvals)
			if state != api.ApprovalPending {
				continue
			}
			p := api.PendingApproval{RunID: run.ID, Target: run.Target, Env: run.Env, Phase: st.Phase, Step: st.Step,
				Title: st.Title, Destructive: st.Destructive, Approve: st.Approve, Missing: missing, Since: st.StartedAt}
			if run.Lease != nil {
				p.Executor = run.Lease.User
			}
			for _, a := range approvals {
				if a.Phase == st.Phase && a.Step == st.Step && a.Round == st.ApprovalRound {
					p.Approvals = append(p.Approvals, a)
				}
			}
			pending = append(pending, p)
		}
	}
	return pending, nil
}

// DecideApproval records user's decision on a step waiting for approval. The user must hold one of
// the step's required team roles not yet approved (any role to reject); a destructive step cannot
// be approved by the user executing it. ErrNotFound, ErrStepNotInRun, ErrNotWaiting,
// ErrNotApprover, ErrTwoPerson.
func (s *Store) DecideApproval(ctx context.Context, id string, req api.ApprovalRequest, user string) (api.Approval, error) {
	var out api.Approval
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			state     []byte
			status    string
			leaseUser pgtype.Text
		)
		err := tx.QueryRow(ctx, `SELECT state, status, lease_user FROM runbook_runs WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &status, &leaseUser)
		if err != nil {
			return notFound(err, "select run")
		}
		var run api.RunbookRun
		if err := json.Unmarshal(state, &run); err != nil {
			return fmt.Errorf("decode run: %w", err)
		}
		i := slices.IndexFunc(run.Steps, func(st api.RunbookStep) bool { return st.Phase == req.Phase && st.Step == req.Step })
		if i < 0 {
			return fmt.Errorf("%w: %s/%s", ErrStepNotInRun, req.Phase, req.Step)
		}
		st := run.Steps[i]
		if status != api.RunbookRunning || st.Status != api.RunbookAwaitingApproval {
			return fmt.Errorf("%w: %s/%s is %s (run %s)", ErrNotWaiting, req.Phase, req.Step, st.Status, status)
		}
		approvals, err := runApprovals(ctx, tx, id)
		if err != nil {
			return err
		}
		outcome, missing := approvalOutcome(st, approvals)
		if outcome != api.ApprovalPending {
			return fmt.Errorf("%w: %s/%s is already %s", ErrNotWaiting, req.Phase, req.Step, outcome)
		}
		roles, err := teamRoles(ctx, tx, user)
		if err != nil {
			return err
		}
		if st.Destructive && req.Decision == api.ApprovalApproved && leaseUser.Valid && leaseUser.String == user {
			return fmt.Errorf("%w: %s is executing destructive step %s/%s; another user must approve it", ErrTwoPerson, user, req.Phase, req.Step)
		}
		if len(st.Approve) > 0 {
			want := missing
			if req.Decision == api.ApprovalRejected {
				want = st.Approve
			}
			if !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(want, r) }) {
				held := "no team role"
				if len(roles) > 0 {
					held = fmt.Sprint(roles)
				}
				return fmt.Errorf("%w: %s/%s needs %v; %s holds %s", ErrNotApprover, req.Phase, req.Step, want, user, held)
			}
		}
		out = api.Approval{RunID: id, Phase: req.Phase, Step: req.Step, Round: st.ApprovalRound, Decision: req.Decision,
			User: user, Roles: roles, Comment: req.Comment}
		if out.Roles == nil {
			out.Roles = []string{}
		}
		if err := tx.QueryRow(ctx, `
			INSERT INTO runbook_approvals (run_id, phase, step, attempt, decision, by_user, roles, comment)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, at`,
			id, req.Phase, req.Step, out.Round, out.Decision, user, out.Roles, req.Comment).Scan(&out.ID, &out.At); err != nil {
			return fmt.Errorf("insert approval: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE runbook_runs SET version = version + 1 WHERE id = $1`, id)
		return err
	})
	return out, err
}
