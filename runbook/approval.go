package runbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// approval asks for a new approval round of step i and waits for its decision. Approvals are
// recorded by the shared store (the API authenticates the approver and enforces the two-person
// rule); a local run can only bypass them, with Options.BreakGlass, and says so in its audit log.
func (e *Engine) approval(ctx context.Context, r *run, i int) error {
	s, ss := r.steps[i], &r.state.Steps[i]
	now := time.Now().UTC()
	ss.ApprovalRound++
	ss.Status, ss.Approval, ss.Approvals = StatusAwaitingApproval, "", nil
	r.state.UpdatedAt = now
	if err := r.save(); err != nil {
		return err
	}
	ev := e.stepEvent(r, i, EventApproval)
	ev.Line = fmt.Sprintf("waiting for approval by %s; approve with: pgactl runbook approve %s %s/%s --comment \"...\"",
		approverText(s, e.opts.Operator), r.state.ID, ss.Phase, s.ID)
	e.emit(ev)

	res, err := r.lease.AwaitApproval(ctx, r.state, i)
	rec := AuditRecord{Time: time.Now().UTC(), Run: r.state.ID, Event: AuditApproval, Who: e.opts.Operator,
		Phase: ss.Phase, Step: s.ID, Kind: s.Kind, Attempt: ss.ApprovalRound}
	switch {
	case errors.Is(err, ErrApprovalNeedsShared) && e.opts.BreakGlass != "":
		rec.Decision, rec.Output = "bypassed (break glass)", e.env.Redact(e.opts.BreakGlass)
		ss.Approval = "bypassed"
		e.note(r, i, "approval bypassed (break glass): "+rec.Output)
		return r.record(rec)
	case errors.Is(err, ErrApprovalNeedsShared):
		return fmt.Errorf("%w: this step needs approval by %s, which only a shared run records (the API authenticates the approver); with the API down, --break-glass \"REASON\" runs it unapproved and records why",
			err, approverText(s, e.opts.Operator))
	case err != nil:
		return err
	}
	rec.Approvers, rec.Output = res.By, e.env.Redact(strings.Join(res.Comments, "\n"))
	rec.Decision = "approved"
	if !res.Approved {
		rec.Decision = "rejected"
	}
	if err := r.record(rec); err != nil {
		return err
	}
	who := strings.Join(res.By, ", ")
	if !res.Approved {
		ss.Status, ss.Approval = StatusPending, "rejected"
		ss.Error = "rejected by " + who
		if c := strings.Join(res.Comments, "; "); c != "" {
			ss.Error += ": " + e.env.Redact(c)
		}
		r.state.UpdatedAt = time.Now().UTC()
		if err := r.save(); err != nil {
			return err
		}
		return fmt.Errorf("%w by %s", ErrRejected, who)
	}
	ss.Approval = "approved"
	e.note(r, i, "approved by "+who)
	return nil
}

func (e *Engine) note(r *run, i int, line string) {
	ev := e.stepEvent(r, i, EventOutput)
	ev.Line = line
	e.emit(ev)
}

func approverText(s *Step, executor string) string {
	t := s.approvers()
	if s.Destructive {
		t += " (destructive: not " + executor + ")"
	}
	return t
}
