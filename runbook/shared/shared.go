// Package shared keeps runbook runs on the pgAnalytics API (/api/v1/runbook/…), so that the whole
// deployment team sees one run live, resumes it from any machine and approves its steps; the API
// authenticates every approver and enforces the two-person rule. It implements runbook.RunStore.
package shared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/wait"
	"github.com/pganalytics/pganalytics/runbook"
)

// Timing of a lease: the server lets one expire 30 s after its last renewal.
const (
	renewEvery   = 10 * time.Second
	pollApproval = time.Second
	callTimeout  = 30 * time.Second
	// persistFor is how long a save or record is retried while the API is unreachable (a server
	// restarting behind the load balancer) before the run stops.
	persistFor = 2 * time.Minute
)

// Caller runs one API call with a valid access token (tui/session.Session renews it as needed).
type Caller interface {
	Do(ctx context.Context, call func(*client.Client) error) error
}

// Store is the runs on one API.
type Store struct {
	API    Caller
	URL    string // for Location
	Holder string // who executes, as the lease shows it: "alice (alice@laptop)"
	// PollEvery is how often a step waiting for approval asks the API; default 1 s.
	PollEvery time.Duration
}

// Location says where the runs are.
func (s *Store) Location() string { return "shared runs on " + s.URL }

func (s *Store) call(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return s.API.Do(ctx, func(c *client.Client) error { return fn(ctx, c) })
}

// Create stores st on the API, which names it and leases it to this process.
func (s *Store) Create(ctx context.Context, st *runbook.RunState) (runbook.RunLease, error) {
	run, err := ToAPI(st)
	if err != nil {
		return nil, err
	}
	var out api.RunbookRun
	err = s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.CreateRunbookRun(ctx, run, s.Holder)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start a shared run: %w", err)
	}
	st.ID, st.StartedBy = out.ID, out.StartedBy
	return s.lease(out.ID, out.Lease.Token), nil
}

// Acquire takes the run's lease (409 while another operator executes it) and loads it.
func (s *Store) Acquire(ctx context.Context, id string) (*runbook.RunState, runbook.RunLease, error) {
	var l api.RunbookLease
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		l, err = c.TakeRunbookLease(ctx, id, "", s.Holder)
		return err
	})
	if err != nil {
		return nil, nil, leaseError(id, err)
	}
	lease := s.lease(id, l.Token)
	st, err := s.Load(ctx, id)
	if err != nil {
		lease.Release()
		return nil, nil, err
	}
	return st, lease, nil
}

// leaseError explains a refused lease: the API's message names who executes the run, until when.
func leaseError(id string, err error) error {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		return fmt.Errorf("run %s is in progress elsewhere: %s", id, apiErr.Message)
	}
	return fmt.Errorf("take the lease of run %s: %w", id, err)
}

// Load returns a run with its lease and approvals.
func (s *Store) Load(ctx context.Context, id string) (*runbook.RunState, error) {
	var run api.RunbookRun
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		run, err = c.RunbookRun(ctx, id)
		return err
	})
	if err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return nil, fmt.Errorf("no run %s in %s", id, s.Location())
		}
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	return FromAPI(run)
}

// List returns the newest runs first.
func (s *Store) List(ctx context.Context) ([]*runbook.RunState, error) {
	var runs []api.RunbookRun
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		runs, err = c.RunbookRuns(ctx, 200)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list shared runs: %w", err)
	}
	out := make([]*runbook.RunState, 0, len(runs))
	for _, r := range runs {
		st, err := FromAPI(r)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// ReadAudit returns the run's audit records, oldest first.
func (s *Store) ReadAudit(ctx context.Context, id string) ([]runbook.AuditRecord, error) {
	var recs []api.RunbookRecord
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		recs, err = c.RunbookRecords(ctx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit records of run %s: %w", id, err)
	}
	out := make([]runbook.AuditRecord, 0, len(recs))
	for _, r := range recs {
		var rec runbook.AuditRecord
		if err := json.Unmarshal(r.Record, &rec); err != nil {
			return out, fmt.Errorf("record %d of run %s: %w", r.ID, id, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// lease renews itself every renewEvery until Release; once another operator has taken the run
// (this lease expired meanwhile) every write fails with runbook.ErrLeaseLost.
type lease struct {
	s     *Store
	id    string
	token string
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	lost    error
	pending []json.RawMessage // records not yet sent
	last    *api.RunbookRun   // the state last saved
}

func (s *Store) lease(id, token string) *lease {
	ctx, stop := context.WithCancel(context.Background())
	l := &lease{s: s, id: id, token: token, stop: stop, done: make(chan struct{})}
	go l.renew(ctx)
	return l
}

func (l *lease) renew(ctx context.Context) {
	defer close(l.done)
	for wait.Sleep(ctx, renewEvery) {
		err := l.s.call(ctx, func(ctx context.Context, c *client.Client) error {
			_, err := c.TakeRunbookLease(ctx, l.id, l.token, l.s.Holder)
			return err
		})
		if conflict(err) {
			l.fail(err)
			return
		}
	}
}

func conflict(err error) bool {
	var apiErr *client.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict
}

func (l *lease) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = fmt.Errorf("run %s: %w: %w", l.id, runbook.ErrLeaseLost, err)
	}
}

func (l *lease) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// persist runs a write of the lease holder, retried while the API is unreachable.
func (l *lease) persist(ctx context.Context, what string, fn func(context.Context, *client.Client) error) error {
	if err := l.lostErr(); err != nil {
		return err
	}
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: true}
	deadline := time.Now().Add(persistFor)
	for {
		err := l.s.call(ctx, fn)
		switch {
		case err == nil:
			return nil
		case conflict(err):
			l.fail(err)
			return l.lostErr()
		case errors.Is(err, client.ErrUnreachable) && time.Now().Before(deadline):
			if !wait.Sleep(ctx, bo.Next()) {
				return fmt.Errorf("%s: %w", what, err)
			}
		default:
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// Save replaces the run's state on the API, together with the records appended since the last
// save: one request, one transaction, so that a step's record and its outcome land together.
func (l *lease) Save(ctx context.Context, st *runbook.RunState) error {
	run, err := ToAPI(st)
	if err != nil {
		return err
	}
	return l.save(ctx, run)
}

func (l *lease) save(ctx context.Context, run api.RunbookRun) error {
	l.mu.Lock()
	records := l.pending
	l.last = &run
	l.mu.Unlock()
	if size := recordsSize(records); size > maxBatchedRecords || len(records) > 100 {
		// Large outputs go one request each, ahead of the state, within the API's body limit.
		for len(records) > 0 {
			rec := records[0]
			if err := l.persist(ctx, "record in the shared run", func(ctx context.Context, c *client.Client) error {
				return c.AppendRunbookRecord(ctx, l.id, l.token, rec)
			}); err != nil {
				return err
			}
			l.mu.Lock()
			l.pending = l.pending[1:]
			l.mu.Unlock()
			records = records[1:]
		}
	}
	err := l.persist(ctx, "save the shared run", func(ctx context.Context, c *client.Client) error {
		return c.SaveRunbookRun(ctx, l.token, run, records)
	})
	if err == nil {
		l.mu.Lock()
		l.pending = l.pending[len(records):]
		l.mu.Unlock()
	}
	return err
}

// maxBatchedRecords bounds the records sent with a save (the API takes 1 MiB a request).
const maxBatchedRecords = 256 << 10

func recordsSize(recs []json.RawMessage) int {
	n := 0
	for _, r := range recs {
		n += len(r)
	}
	return n
}

// Append queues one audit record for the next save (the engine saves right after recording; the
// last records are sent on Release).
func (l *lease) Append(_ context.Context, rec runbook.AuditRecord) error {
	if err := l.lostErr(); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, b)
	return nil
}

// AwaitApproval asks the API until the step's current round is decided.
func (l *lease) AwaitApproval(ctx context.Context, st *runbook.RunState, i int) (runbook.ApprovalResult, error) {
	want := st.Steps[i]
	every := l.s.PollEvery
	if every <= 0 {
		every = pollApproval
	}
	for {
		if err := l.lostErr(); err != nil {
			return runbook.ApprovalResult{}, err
		}
		var run api.RunbookRun
		err := l.s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
			run, err = c.RunbookRun(ctx, l.id)
			return err
		})
		if err != nil && ctx.Err() != nil {
			return runbook.ApprovalResult{}, ctx.Err()
		}
		if err == nil {
			for _, step := range run.Steps {
				if step.Phase != want.Phase || step.Step != want.Step {
					continue
				}
				if res, ok := decided(step); ok {
					return res, nil
				}
			}
		}
		// An unreachable API is waited out like a slow approver.
		if !wait.Sleep(ctx, every) {
			return runbook.ApprovalResult{}, ctx.Err()
		}
	}
}

// decided reads the step's current round: who approved, or who rejected.
func decided(step api.RunbookStep) (runbook.ApprovalResult, bool) {
	if step.Approval != api.ApprovalApproved && step.Approval != api.ApprovalRejected {
		return runbook.ApprovalResult{}, false
	}
	res := runbook.ApprovalResult{Approved: step.Approval == api.ApprovalApproved}
	for _, a := range step.Approvals {
		if a.Round != step.ApprovalRound || (a.Decision == api.ApprovalApproved) != res.Approved {
			continue
		}
		res.By = append(res.By, a.User)
		if a.Comment != "" {
			res.Comments = append(res.Comments, a.User+": "+a.Comment)
		}
	}
	return res, true
}

// Release stops renewing and gives the lease back, so that another operator can resume at once.
func (l *lease) Release() {
	l.stop()
	<-l.done
	if l.lostErr() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	last, unsent := l.last, len(l.pending)
	l.mu.Unlock()
	if last != nil && unsent > 0 {
		_ = l.save(ctx, *last)
	}
	_ = l.s.call(ctx, func(ctx context.Context, c *client.Client) error {
		return c.ReleaseRunbookLease(ctx, l.id, l.token)
	})
}

// ToAPI is the run as the API takes it (the same JSON), long texts cut to the API's bounds.
func ToAPI(st *runbook.RunState) (api.RunbookRun, error) {
	var run api.RunbookRun
	b, err := json.Marshal(st)
	if err == nil {
		err = json.Unmarshal(b, &run)
	}
	if err != nil {
		return run, fmt.Errorf("encode run: %w", err)
	}
	run.Error = cut(run.Error, maxErrorBytes)
	for i := range run.Steps {
		run.Steps[i].Error = cut(run.Steps[i].Error, maxErrorBytes)
		run.Steps[i].Title = cut(run.Steps[i].Title, maxTitleBytes)
	}
	return run, nil
}

// The API's bounds on a run's texts.
const (
	maxErrorBytes = 16 << 10
	maxTitleBytes = 256
)

// cut shortens s to at most n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	s = s[:n-len(mark)]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + mark
}

// FromAPI is the run as the runbook package knows it.
func FromAPI(run api.RunbookRun) (*runbook.RunState, error) {
	var st runbook.RunState
	b, err := json.Marshal(run)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return nil, fmt.Errorf("decode run %s: %w", run.ID, err)
	}
	return &st, nil
}

// Follow calls fn with the run now and after every change, from the API's live stream (reconnected
// when it breaks), until fn returns false or ctx ends.
func (s *Store) Follow(ctx context.Context, id string, fn func(*runbook.RunState) bool) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var fnErr error
	bo := backoff.Backoff{Min: time.Second, Max: 30 * time.Second, Jitter: true}
	for {
		err := s.API.Do(ctx, func(c *client.Client) error {
			return c.StreamRunbookRun(ctx, id, func(run api.RunbookRun) {
				bo.Reset()
				st, err := FromAPI(run)
				if err != nil {
					fnErr = err
					stop()
					return
				}
				if !fn(st) {
					stop()
				}
			})
		})
		switch {
		case fnErr != nil:
			return fnErr
		case ctx.Err() != nil:
			return nil
		}
		var se *client.StreamError
		if !errors.As(err, &se) {
			return fmt.Errorf("follow run %s: %w", id, err)
		}
		if !wait.Sleep(ctx, max(se.Retry, bo.Next())) {
			return nil
		}
	}
}

// Decide approves (or rejects) a step waiting for approval, as the logged-in user.
func (s *Store) Decide(ctx context.Context, id string, req api.ApprovalRequest) (api.Approval, error) {
	var a api.Approval
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		a, err = c.DecideApproval(ctx, id, req)
		return err
	})
	return a, err
}

// Pending lists every step waiting for approval.
func (s *Store) Pending(ctx context.Context) ([]api.PendingApproval, error) {
	var p []api.PendingApproval
	err := s.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		p, err = c.PendingApprovals(ctx)
		return err
	})
	return p, err
}
