package fake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pganalytics/pganalytics/runbook"
)

// Book is a small runbook: a staging phase and a rollback phase with a destructive restore.
func Book() *runbook.Runbook {
	return &runbook.Runbook{Title: "pgAnalytics v3.2.0 deployment", Source: "fixture", Phases: []runbook.Phase{
		{ID: "staging", Title: "Staging deployment", Steps: []runbook.Step{
			{ID: "deploy-api", Title: "Deploy the API server", Kind: runbook.KindCommand, Run: "deploy_api\nstart_api"},
			{ID: "health", Title: "Test API health", Kind: runbook.KindCheck, Check: runbook.CheckHTTPHealth, URL: "${API_URL}"},
			{ID: "register", Title: "Test collector registration", Kind: runbook.KindCheck, Check: runbook.CheckRegistration},
			{ID: "dashboards", Title: "Import the Grafana dashboards", Kind: runbook.KindManual,
				Description: "Import the nine dashboards and check each shows data.", Checklist: []string{"9 dashboards loaded", "data in each"}},
		}},
		{ID: "rollback", Title: "Rollback procedure", Steps: []runbook.Step{
			{ID: "stop", Title: "STOP: pause all collectors", Kind: runbook.KindCommand, Run: "stop_collector"},
			{ID: "assess", Title: "ASSESS: determine the impact", Kind: runbook.KindManual},
			{ID: "restore", Title: "RESTORE: from the pre-deployment backup", Kind: runbook.KindCommand, Destructive: true,
				Run: `pg_restore --clean --dbname "$DATABASE_URL" "$BACKUP_FILE"`},
			{ID: "verify", Title: "VERIFY: system operational", Kind: runbook.KindCheck, Check: runbook.CheckHTTPHealth},
		}},
	}}
}

// PastRunID is the staging run the fixture history holds: it failed at staging/health.
const PastRunID = "20260227T143000Z-5e1f00"

// Runner plays the engine's events for Book at the fixed clock: each step succeeds in 1.5s with the
// output in Output, except those named in Fail; manual, destructive and failed steps ask the
// confirmer as the engine does.
type Runner struct {
	Output map[string][]string // by step ID
	Fail   map[string]string   // step ID -> error
	Past   map[string][]*runbook.RunState
	// Remote is a shared run executed elsewhere, as it changes: History lists the first state
	// (running, leased), Follow plays them all.
	Remote []*runbook.RunState
}

// NewRunner is the fixture runner with the staging run that stopped at health.
func NewRunner() *Runner {
	start := Now.Add(-34 * time.Minute)
	return &Runner{
		Output: map[string][]string{
			"deploy-api": {"pganalytics-api 3.2.0 (commit 1a2b3c4)", "the API answers on http://127.0.0.1:8080"},
			"health":     {"GET http://127.0.0.1:8080/api/v1/health", "200 OK: status healthy, database healthy, cache healthy"},
			"stop":       {"collector 4242 paused (SIGSTOP)"},
		},
		Past: map[string][]*runbook.RunState{"staging": {{
			ID: PastRunID, Runbook: "fixture", Env: "demo", Target: "staging", Status: runbook.StatusFailed,
			Error: "staging/health: step failed", StartedAt: start, UpdatedAt: start.Add(13 * time.Second),
			Steps: []runbook.StepState{
				{Phase: "staging", Step: "deploy-api", Kind: runbook.KindCommand, Status: runbook.StatusSucceeded, Attempts: 1,
					StartedAt: start, EndedAt: start.Add(12 * time.Second)},
				{Phase: "staging", Step: "health", Kind: runbook.KindCheck, Status: runbook.StatusFailed, Attempts: 2,
					StartedAt: start.Add(12 * time.Second), EndedAt: start.Add(13 * time.Second),
					Error: "GET http://127.0.0.1:8080/api/v1/health: 503 unhealthy (database down)"},
				{Phase: "staging", Step: "register", Kind: runbook.KindCheck, Status: runbook.StatusPending},
				{Phase: "staging", Step: "dashboards", Kind: runbook.KindManual, Status: runbook.StatusPending},
			},
		}}},
	}
}

// Runbook is Book.
func (r *Runner) Runbook() *runbook.Runbook { return Book() }

// Env is the fixture environment's name.
func (r *Runner) Env() string { return "demo" }

// History is the fixture's past runs.
func (r *Runner) History(_ context.Context, phase string) ([]*runbook.RunState, error) {
	if len(r.Remote) > 0 && r.Remote[0].Target == phase {
		return append([]*runbook.RunState{r.Remote[0]}, r.Past[phase]...), nil
	}
	return r.Past[phase], nil
}

// Follow plays Remote.
func (r *Runner) Follow(ctx context.Context, runID string, fn func(*runbook.RunState) bool) error {
	for _, st := range r.Remote {
		if st.ID != runID {
			return fmt.Errorf("no run %s", runID)
		}
		if !fn(st) {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// Run plays target.
func (r *Runner) Run(ctx context.Context, t runbook.Target, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error) {
	return r.play(ctx, "20260227T150405Z-c0ffee", t, nil, c, onEvent)
}

// Resume plays the past run from its first step that did not succeed.
func (r *Runner) Resume(ctx context.Context, runID string, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error) {
	for _, runs := range r.Past {
		for _, st := range runs {
			if st.ID == runID {
				t, _ := runbook.ParseTarget(st.Target)
				return r.play(ctx, runID, t, st, c, onEvent)
			}
		}
	}
	return nil, fmt.Errorf("no run %s", runID)
}

func (r *Runner) play(ctx context.Context, id string, t runbook.Target, past *runbook.RunState, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error) {
	book := Book()
	phase, steps, err := book.Select(t)
	if err != nil {
		return nil, err
	}
	st := &runbook.RunState{ID: id, Runbook: "fixture", Env: "demo", Target: t.String(), Status: runbook.StatusRunning, StartedAt: Now}
	for _, s := range steps {
		st.Steps = append(st.Steps, runbook.StepState{Phase: phase.ID, Step: s.ID, Kind: s.Kind, Status: runbook.StatusPending})
	}
	if past != nil {
		st.Steps = past.Steps
	}
	emit := func(ev runbook.Event) {
		ev.Time, ev.RunID, ev.Total = Now, id, len(steps)
		onEvent(ev)
	}
	emit(runbook.Event{Kind: runbook.EventRunStarted})
	var runErr error
	for i, s := range steps {
		ss := &st.Steps[i]
		if ss.Status == runbook.StatusSucceeded || ss.Status == runbook.StatusSkipped {
			continue
		}
		if runErr = r.step(ctx, s, ss, i, c, emit); runErr != nil {
			break
		}
	}
	switch {
	case runErr == nil:
		st.Status = runbook.StatusSucceeded
	case errors.Is(runErr, runbook.ErrAborted), errors.Is(runErr, runbook.ErrNotConfirmed):
		st.Status = runbook.StatusAborted
	default:
		st.Status = runbook.StatusFailed
	}
	emit(runbook.Event{Kind: runbook.EventRunFinished, Status: st.Status, Err: runErr})
	return st, runErr
}

func (r *Runner) step(ctx context.Context, s *runbook.Step, ss *runbook.StepState, i int, c runbook.Confirmer, emit func(runbook.Event)) error {
	ev := func(kind runbook.EventKind) runbook.Event {
		return runbook.Event{Kind: kind, Phase: ss.Phase, Step: s, Index: i + 1, Attempt: ss.Attempts}
	}
	ask := func(kind runbook.PromptKind, cause error) (runbook.Reply, error) {
		w := ev(runbook.EventWaiting)
		w.Prompt = &runbook.Prompt{Kind: kind, Phase: ss.Phase, Step: s, Attempt: ss.Attempts, Err: cause}
		emit(w)
		return c.Confirm(ctx, *w.Prompt)
	}
	finish := func(status runbook.Status, d time.Duration, err error) {
		ss.Status = status
		f := ev(runbook.EventStepFinished)
		f.Status, f.Duration, f.Err = status, d, err
		emit(f)
	}
	if s.Kind == runbook.KindManual {
		emit(ev(runbook.EventStepStarted))
		reply, err := ask(runbook.PromptManual, nil)
		if err != nil {
			return err
		}
		switch reply.Decision {
		case runbook.Proceed:
			finish(runbook.StatusSucceeded, 0, nil)
			return nil
		case runbook.Skip:
			finish(runbook.StatusSkipped, 0, nil)
			return nil
		}
		return runbook.ErrAborted
	}
	if s.Destructive {
		reply, err := ask(runbook.PromptDestructive, nil)
		if err != nil {
			return err
		}
		switch {
		case reply.Decision == runbook.Skip:
			finish(runbook.StatusSkipped, 0, nil)
			return nil
		case reply.Decision != runbook.Proceed:
			return runbook.ErrAborted
		case reply.Typed != s.ID:
			return runbook.ErrNotConfirmed
		}
	}
	for {
		ss.Attempts++
		emit(ev(runbook.EventStepStarted))
		for _, l := range r.Output[s.ID] {
			o := ev(runbook.EventOutput)
			o.Line = l
			emit(o)
		}
		msg, failed := r.Fail[s.ID]
		if !failed {
			finish(runbook.StatusSucceeded, 1500*time.Millisecond, nil)
			return nil
		}
		err := fmt.Errorf("%s/%s: %s: %w", ss.Phase, s.ID, msg, runbook.ErrStepFailed)
		finish(runbook.StatusFailed, 800*time.Millisecond, err)
		reply, perr := ask(runbook.PromptFailed, err)
		if perr != nil {
			return perr
		}
		switch reply.Decision {
		case runbook.Proceed:
			continue
		case runbook.Skip:
			finish(runbook.StatusSkipped, 0, nil)
			return nil
		}
		return err
	}
}
