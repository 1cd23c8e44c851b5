package runbook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Audit record types (AuditRecord.Event).
const (
	AuditRunStarted   = "run_started"
	AuditRunResumed   = "run_resumed"
	AuditConfirmation = "confirmation"
	AuditApproval     = "approval"
	AuditStep         = "step"
	AuditRunFinished  = "run_finished"
)

// AuditRecord is one line of a run's audit log. Commands are logged as written in the runbook
// (${NAME} references unexpanded); output and errors are redacted.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	Run      string    `json:"run"`
	Event    string    `json:"event"`
	Who      string    `json:"who"`
	Phase    string    `json:"phase,omitempty"`
	Step     string    `json:"step,omitempty"`
	Kind     Kind      `json:"kind,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	Command  string    `json:"command,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Status   Status    `json:"status,omitempty"`
	Start    time.Time `json:"start,omitzero"`
	End      time.Time `json:"end,omitzero"`
	Output   string    `json:"output,omitempty"`
	Error    string    `json:"error,omitempty"`

	// confirmation records
	Prompt   string `json:"prompt,omitempty"`
	Decision string `json:"decision,omitempty"`

	// approval records: who approved or rejected (Decision), their comments in Output
	Approvers []string `json:"approvers,omitempty"`

	// run_started records
	Runbook  string            `json:"runbook,omitempty"`
	Env      string            `json:"env,omitempty"`
	Target   string            `json:"target,omitempty"`
	Commands map[string]string `json:"commands,omitempty"` // the environment's shell functions
}

// auditLog appends records to a run's log. Each record is one write of one line, synced, on a file
// opened O_APPEND: records are never rewritten.
type auditLog struct {
	f *os.File
}

func openAudit(path string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &auditLog{f: f}, nil
}

func (a *auditLog) append(rec AuditRecord) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	if _, err := a.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync audit log: %w", err)
	}
	return nil
}

func (a *auditLog) close() error { return a.f.Close() }

// maxAuditLine bounds one record when reading a log back (output is capped well below it).
const maxAuditLine = 4 << 20

// ReadAudit returns a run's audit records in order.
func (s *Store) ReadAudit(_ context.Context, id string) ([]AuditRecord, error) {
	if !runIDRe.MatchString(id) {
		return nil, fmt.Errorf("invalid run id %q", id)
	}
	f, err := os.Open(s.AuditPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no audit log for run %s under %s", id, s.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	return readAudit(f)
}

func readAudit(r io.Reader) ([]AuditRecord, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxAuditLine)
	var recs []AuditRecord
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec AuditRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return recs, fmt.Errorf("audit log line %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return recs, fmt.Errorf("read audit log: %w", err)
	}
	return recs, nil
}
