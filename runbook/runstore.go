package runbook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RunStore keeps runs: the team's API (package runbook/shared, the default) or, offline, the local
// state directory (*Store).
type RunStore interface {
	// Create stores a new run, assigning st.ID, and leases it to this process.
	Create(ctx context.Context, st *RunState) (RunLease, error)
	// Acquire leases an existing run to this process, to resume it; it fails while another process
	// (here or, shared, anywhere) executes the run.
	Acquire(ctx context.Context, id string) (*RunState, RunLease, error)
	Load(ctx context.Context, id string) (*RunState, error)
	List(ctx context.Context) ([]*RunState, error)
	ReadAudit(ctx context.Context, id string) ([]AuditRecord, error)
	// Location says where the runs are, for people: "local state DIR", "shared on URL".
	Location() string
}

// RunLease is one process's exclusive right to execute a run, until Release.
type RunLease interface {
	Save(ctx context.Context, st *RunState) error
	Append(ctx context.Context, rec AuditRecord) error
	// AwaitApproval blocks until step i of st (status awaiting_approval, its round saved) is approved
	// or rejected, or ctx ends. ErrApprovalNeedsShared when the store cannot take approvals.
	AwaitApproval(ctx context.Context, st *RunState, i int) (ApprovalResult, error)
	Release()
}

// ApprovalResult is the decision on a step's approval round.
type ApprovalResult struct {
	Approved bool
	By       []string // who decided
	Comments []string
}

// ErrApprovalNeedsShared: approvals are recorded by the API, where the approver is authenticated;
// a local run cannot take them (only bypass them, with Options.BreakGlass).
var ErrApprovalNeedsShared = errors.New("approvals need a shared run")

// ErrRejected ends a run whose step an approver rejected.
var ErrRejected = errors.New("step rejected")

// Create makes a new run directory with a fresh ID, locks it and saves st there.
func (s *Store) Create(_ context.Context, st *RunState) (RunLease, error) {
	id, unlock, err := s.create(time.Now())
	if err != nil {
		return nil, err
	}
	st.ID = id
	l, err := s.lease(id, unlock)
	if err != nil {
		return nil, err
	}
	if err := s.save(st); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Acquire locks the run (failing at once when another process holds it) and loads it.
func (s *Store) Acquire(_ context.Context, id string) (*RunState, RunLease, error) {
	st, err := s.load(id)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := s.lock(id)
	if err != nil {
		return st, nil, err
	}
	l, err := s.lease(id, unlock)
	if err != nil {
		return st, nil, err
	}
	// Read again under the lock: the previous holder may have saved since.
	if st, err = s.load(id); err != nil {
		l.Release()
		return nil, nil, err
	}
	return st, l, nil
}

func (s *Store) lease(id string, unlock func()) (*localLease, error) {
	audit, err := openAudit(s.AuditPath(id))
	if err != nil {
		unlock()
		return nil, err
	}
	return &localLease{store: s, audit: audit, unlock: unlock}, nil
}

// localLease is the flock on a local run.
type localLease struct {
	store  *Store
	audit  *auditLog
	unlock func()
}

func (l *localLease) Save(_ context.Context, st *RunState) error      { return l.store.save(st) }
func (l *localLease) Append(_ context.Context, rec AuditRecord) error { return l.audit.append(rec) }

func (l *localLease) AwaitApproval(context.Context, *RunState, int) (ApprovalResult, error) {
	return ApprovalResult{}, ErrApprovalNeedsShared
}

func (l *localLease) Release() {
	l.audit.close()
	l.unlock()
}

// approvalNeeded reports whether step s must be approved before it runs: it names approvers, or it
// is destructive (two people: someone other than the executor approves).
func (s *Step) approvalNeeded() bool { return len(s.Approve) > 0 || s.Destructive }

// approvers says who may approve s, for people.
func (s *Step) approvers() string {
	if len(s.Approve) == 0 {
		return "another operator"
	}
	return fmt.Sprint(s.Approve)
}
