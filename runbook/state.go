package runbook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/fileutil"
)

// Status is the state of a run or of one of its steps.
type Status string

// Statuses. A run is running, succeeded, failed, aborted or interrupted; a step is pending, running,
// succeeded, failed, skipped or interrupted.
const (
	StatusPending          Status = "pending"
	StatusRunning          Status = "running"
	StatusSucceeded        Status = "succeeded"
	StatusFailed           Status = "failed"
	StatusSkipped          Status = "skipped"
	StatusAborted          Status = "aborted"                   // the operator stopped the run (or refused a destructive step)
	StatusInterrupted      Status = "interrupted"               // cancelled mid-run (Ctrl-C, quit); a crash leaves "running"
	StatusAwaitingApproval Status = api.RunbookAwaitingApproval // a step waits for its approvers
)

// RunState is what a run persists after every step: enough to show it and to resume it. It never
// holds a secret value: errors are redacted and step output lives only in the audit log (redacted).
type RunState struct {
	ID         string      `json:"id"`
	Runbook    string      `json:"runbook"` // Runbook.Source
	Title      string      `json:"title"`
	Env        string      `json:"env"` // Environment.Name
	Target     string      `json:"target"`
	Operator   string      `json:"operator"`
	Status     Status      `json:"status"`
	Error      string      `json:"error,omitempty"`
	StartedAt  time.Time   `json:"started_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	FinishedAt time.Time   `json:"finished_at,omitzero"`
	Steps      []StepState `json:"steps"`

	// Set by the store on load: who started a shared run, and who executes the run right now (nil
	// when nobody does).
	StartedBy string            `json:"started_by,omitempty"`
	Lease     *api.RunbookLease `json:"lease,omitempty"`
}

// StepState is one step of a run.
type StepState struct {
	Phase       string `json:"phase"`
	Step        string `json:"step"`
	Title       string `json:"title"`
	Kind        Kind   `json:"kind"`
	Destructive bool   `json:"destructive,omitempty"`
	// Approve is the team roles that must approve the step before it runs; ApprovalRound counts the
	// times approval was asked. Approval and Approvals are the shared store's answer.
	Approve       []string       `json:"approve,omitempty"`
	ApprovalRound int            `json:"approval_round,omitempty"`
	Approval      string         `json:"approval,omitempty"`
	Approvals     []api.Approval `json:"approvals,omitempty"`
	Status        Status         `json:"status"`
	Attempts      int            `json:"attempts"`
	StartedAt     time.Time      `json:"started_at,omitzero"`
	EndedAt       time.Time      `json:"ended_at,omitzero"`
	ExitCode      *int           `json:"exit_code,omitempty"`
	Error         string         `json:"error,omitempty"`
}

// Resumable reports whether the run can be continued with Engine.Resume.
func (r *RunState) Resumable() bool { return r.Status != StatusSucceeded }

// Store is the runs kept under a state directory: DIR/runs/ID/{state.json,audit.jsonl,lock}.
type Store struct {
	Dir string
}

// DefaultStateDir is $PGACTL_STATE_DIR, else $XDG_STATE_HOME/pgactl, else ~/.local/state/pgactl.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("PGACTL_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pgactl"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("state directory: %w (set PGACTL_STATE_DIR)", err)
	}
	return filepath.Join(home, ".local", "state", "pgactl"), nil
}

// CurrentOperator names who runs pgactl, for the audit log: the login name, and the sudo caller.
func CurrentOperator() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = "uid:" + fmt.Sprint(os.Getuid())
	}
	if s := os.Getenv("SUDO_USER"); s != "" && s != name {
		return name + " (sudo from " + s + ")"
	}
	return name
}

var runIDRe = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

func (s *Store) runsDir() string            { return filepath.Join(s.Dir, "runs") }
func (s *Store) RunDir(id string) string    { return filepath.Join(s.runsDir(), id) }
func (s *Store) statePath(id string) string { return filepath.Join(s.RunDir(id), "state.json") }

// AuditPath is the run's append-only JSON-lines audit log.
func (s *Store) AuditPath(id string) string { return filepath.Join(s.RunDir(id), "audit.jsonl") }

// Load reads one run's state; Lease is set while a process executes it.
func (s *Store) Load(_ context.Context, id string) (*RunState, error) {
	st, err := s.load(id)
	if err != nil {
		return nil, err
	}
	if s.inProgress(id) {
		st.Lease = &api.RunbookLease{User: "another pgactl on this machine", Holder: s.Dir}
	}
	return st, nil
}

func (s *Store) load(id string) (*RunState, error) {
	if !runIDRe.MatchString(id) {
		return nil, fmt.Errorf("invalid run id %q", id)
	}
	data, err := readCapped(s.statePath(id), 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no run %s under %s", id, s.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read run state: %w", err)
	}
	var st RunState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("run %s: corrupt state file: %w", id, err)
	}
	return &st, nil
}

// List returns every run, newest first. Unreadable runs are skipped.
func (s *Store) List(ctx context.Context) ([]*RunState, error) {
	entries, err := os.ReadDir(s.runsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var runs []*RunState
	for _, e := range entries {
		if !e.IsDir() || !runIDRe.MatchString(e.Name()) {
			continue
		}
		if st, err := s.Load(ctx, e.Name()); err == nil {
			runs = append(runs, st)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID > runs[j].ID })
	return runs, nil
}

// Location says where the runs are kept.
func (s *Store) Location() string { return "local state " + s.Dir }

// inProgress reports whether a process is executing the run right now (it holds the run's lock).
func (s *Store) inProgress(id string) bool {
	unlock, err := s.lock(id)
	if err != nil {
		return errors.Is(err, errLocked)
	}
	unlock()
	return false
}

// create makes a new run directory with a fresh ID and locks it.
func (s *Store) create(now time.Time) (id string, unlock func(), err error) {
	if err := os.MkdirAll(s.runsDir(), 0o700); err != nil {
		return "", nil, fmt.Errorf("create state directory: %w", err)
	}
	for range 5 {
		if id, err = newRunID(now); err != nil {
			return "", nil, err
		}
		err = os.Mkdir(s.RunDir(id), 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create run directory: %w", err)
		}
		unlock, err := s.lock(id)
		if err != nil {
			return "", nil, err
		}
		return id, unlock, nil
	}
	return "", nil, errors.New("create run directory: no free run id")
}

// newRunID is a fresh id: the UTC start time and 6 random hex digits.
func newRunID(now time.Time) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

var errLocked = errors.New("run is in progress in another process")

// lock takes the run's exclusive lock, so two processes never execute one run.
func (s *Store) lock(id string) (func(), error) {
	return lockFile(filepath.Join(s.RunDir(id), "lock"), "run "+id)
}

// lockFile takes an exclusive lock on path (created), failing at once if another process holds it.
func lockFile(path, what string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", what, errLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// save writes the state atomically: a temporary file in the same directory, synced, then renamed
// over the old one, so a crash leaves either the previous state or the new one, never a torn file.
func (s *Store) save(st *RunState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run state: %w", err)
	}
	if err := fileutil.WriteAtomic(s.statePath(st.ID), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save run state: %w", err)
	}
	return nil
}

// Latest returns the newest run of runs.
func Latest(ctx context.Context, runs RunStore) (*RunState, error) {
	all, err := runs.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no runs in %s", runs.Location())
	}
	return all[0], nil
}

// FindResumable picks the run to resume: run id when given, else the newest unfinished run (of
// target, a phase or PHASE/STEP, when given).
func FindResumable(ctx context.Context, runs RunStore, id, target string) (*RunState, error) {
	if id != "" {
		st, err := runs.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if !st.Resumable() {
			return nil, fmt.Errorf("run %s already succeeded", id)
		}
		return st, nil
	}
	all, err := runs.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range all {
		if target != "" && st.Target != target && !strings.HasPrefix(st.Target, target+"/") {
			continue
		}
		if st.Resumable() {
			return st, nil
		}
	}
	if target != "" {
		return nil, fmt.Errorf("no unfinished run of %s in %s", target, runs.Location())
	}
	return nil, fmt.Errorf("no unfinished run in %s", runs.Location())
}
