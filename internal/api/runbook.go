package api

import (
	"encoding/json"
	"time"
)

// Team roles: the deployment plan's roles, held by API users (a user may hold several) and named by
// a runbook step's approve = [...].
const (
	TeamDeploymentLead     = "deployment-lead"
	TeamDatabaseLead       = "database-lead"
	TeamInfrastructureLead = "infrastructure-lead"
	TeamCollectorLead      = "collector-lead"
	TeamSecurityLead       = "security-lead"
	TeamSRELead            = "sre-lead"
)

// TeamRoles lists every team role, in the plan's order.
var TeamRoles = []string{TeamDeploymentLead, TeamDatabaseLead, TeamInfrastructureLead, TeamCollectorLead,
	TeamSecurityLead, TeamSRELead}

// IsTeamRole reports whether r is one of TeamRoles.
func IsTeamRole(r string) bool {
	for _, t := range TeamRoles {
		if t == r {
			return true
		}
	}
	return false
}

// TeamRolesRequest is PUT /api/v1/users/{id}/team-roles: the user's complete set of team roles.
type TeamRolesRequest struct {
	Roles []string `json:"roles"`
}

// Approval decisions and a step's approval state (RunbookStep.Approval).
const (
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalPending  = "pending"
)

// Runbook step and run statuses the server acts on (the runbook package defines them all).
const (
	RunbookAwaitingApproval = "awaiting_approval"
	RunbookRunning          = "running"
	RunbookSucceeded        = "succeeded"
)

// RunbookRun is a shared run: what pgactl's runbook engine saves after every step (the JSON of
// runbook.RunState) plus what the server adds: who started it, who executes it, the approvals.
type RunbookRun struct {
	ID         string        `json:"id"`
	Runbook    string        `json:"runbook"`
	Title      string        `json:"title"`
	Env        string        `json:"env"`
	Target     string        `json:"target"`
	Operator   string        `json:"operator"`
	Status     string        `json:"status"`
	Error      string        `json:"error,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
	Steps      []RunbookStep `json:"steps"`

	// Set by the server; ignored when sent.
	StartedBy string        `json:"started_by,omitempty"`
	Version   int64         `json:"version,omitempty"`
	Lease     *RunbookLease `json:"lease,omitempty"`
}

// RunbookStep is one step of a run. Approve, ApprovalRound and Status are the executor's; Approval
// and Approvals are the server's answer to them.
type RunbookStep struct {
	Phase         string     `json:"phase"`
	Step          string     `json:"step"`
	Title         string     `json:"title"`
	Kind          string     `json:"kind"`
	Destructive   bool       `json:"destructive,omitempty"`
	Approve       []string   `json:"approve,omitempty"`        // team roles that must approve before it runs
	ApprovalRound int        `json:"approval_round,omitempty"` // how many times approval was asked
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	StartedAt     time.Time  `json:"started_at,omitzero"`
	EndedAt       time.Time  `json:"ended_at,omitzero"`
	ExitCode      *int       `json:"exit_code,omitempty"`
	Error         string     `json:"error,omitempty"`
	Approval      string     `json:"approval,omitempty"` // pending | approved | rejected, for the current round
	Approvals     []Approval `json:"approvals,omitempty"`
}

// RunbookLease is who executes a run right now; Token only in the answer that grants it.
type RunbookLease struct {
	User      string    `json:"user"`
	Holder    string    `json:"holder"`
	ExpiresAt time.Time `json:"expires_at"`
	Token     string    `json:"token,omitempty"`
}

// RunbookCreateRequest is POST /api/v1/runbook/runs: the new run (its id is the server's) and who
// executes it.
type RunbookCreateRequest struct {
	Run    RunbookRun `json:"run"`
	Holder string     `json:"holder"`
}

// RunbookSave is PUT /api/v1/runbook/runs/{id}: the run's state and the audit records that led to
// it, stored together.
type RunbookSave struct {
	Run     RunbookRun        `json:"run"`
	Records []json.RawMessage `json:"records,omitempty"`
}

// RunbookLeaseRequest is POST /api/v1/runbook/runs/{id}/lease: take the lease (resume), or renew it
// with the X-Runbook-Lease header.
type RunbookLeaseRequest struct {
	Holder string `json:"holder"`
}

// RunbookRunsResponse is GET /api/v1/runbook/runs (newest first, without steps' approvals).
type RunbookRunsResponse struct {
	Runs []RunbookRun `json:"runs"`
}

// RunbookRecord is one audit record of a run (the JSON of runbook.AuditRecord), as the server kept it.
type RunbookRecord struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	User   string          `json:"user"`
	Record json.RawMessage `json:"record"`
}

// RunbookRecordsResponse is GET /api/v1/runbook/runs/{id}/records, oldest first.
type RunbookRecordsResponse struct {
	Records []RunbookRecord `json:"records"`
}

// ApprovalRequest is POST /api/v1/runbook/runs/{id}/approvals.
type ApprovalRequest struct {
	Phase    string `json:"phase"`
	Step     string `json:"step"`
	Decision string `json:"decision"` // approved | rejected
	Comment  string `json:"comment,omitempty"`
}

// Approval is one recorded decision on a step.
type Approval struct {
	ID       int64     `json:"id"`
	RunID    string    `json:"run_id"`
	Phase    string    `json:"phase"`
	Step     string    `json:"step"`
	Round    int       `json:"round"`
	Decision string    `json:"decision"`
	User     string    `json:"user"`
	Roles    []string  `json:"roles"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// PendingApproval is a step waiting for approval, for GET /api/v1/runbook/approvals.
type PendingApproval struct {
	RunID       string     `json:"run_id"`
	Target      string     `json:"target"`
	Env         string     `json:"env"`
	Phase       string     `json:"phase"`
	Step        string     `json:"step"`
	Title       string     `json:"title"`
	Destructive bool       `json:"destructive,omitempty"`
	Approve     []string   `json:"approve,omitempty"`
	Missing     []string   `json:"missing,omitempty"` // required roles nobody has approved for yet
	Executor    string     `json:"executor,omitempty"`
	Since       time.Time  `json:"since"`
	Approvals   []Approval `json:"approvals,omitempty"`
}

// PendingApprovalsResponse is GET /api/v1/runbook/approvals.
type PendingApprovalsResponse struct {
	Pending []PendingApproval `json:"pending"`
}
