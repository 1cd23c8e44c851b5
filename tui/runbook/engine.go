package runbook

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/runbook"
)

// EngineRunner runs a runbook in one environment through the runbook engine: one engine per run,
// all sharing the state directory, so runs started here resume with `pgactl runbook` and back.
type EngineRunner struct {
	Book        *runbook.Runbook
	Environment *runbook.Environment
	StateDir    string
	Runs        runbook.RunStore   // where runs are kept (shared on the API); nil: the local StateDir
	BreakGlass  string             // a local run's reason to run steps that need approval without it
	Operator    string             // default: the engine's (the login name)
	WatchEvery  time.Duration      // the console's watch: default DefaultWatchEvery
	WatchFor    time.Duration      // default DefaultWatchFor
	Smoke       runbook.SmokeSuite // runs the check "smoke"
}

// Runbook is the runbook run.
func (e *EngineRunner) Runbook() *runbook.Runbook { return e.Book }

// Env is the environment's name.
func (e *EngineRunner) Env() string { return e.Environment.Name }

func (e *EngineRunner) engine(c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.Engine, error) {
	return runbook.NewEngine(e.Book, e.Environment, runbook.Options{
		StateDir: e.StateDir, Runs: e.Runs, BreakGlass: e.BreakGlass, Operator: e.Operator, Confirmer: c, OnEvent: onEvent, Smoke: e.Smoke,
	})
}

// Run starts a run of t.
func (e *EngineRunner) Run(ctx context.Context, t runbook.Target, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error) {
	eng, err := e.engine(c, onEvent)
	if err != nil {
		return nil, err
	}
	return eng.Run(ctx, t)
}

// Resume continues the run runID.
func (e *EngineRunner) Resume(ctx context.Context, runID string, c runbook.Confirmer, onEvent func(runbook.Event)) (*runbook.RunState, error) {
	eng, err := e.engine(c, onEvent)
	if err != nil {
		return nil, err
	}
	return eng.Resume(ctx, runID)
}

// History lists the runs of phase made with this runbook and environment, newest first, those
// another process is executing right now included (their Lease is set).
func (e *EngineRunner) History(ctx context.Context, phase string) ([]*runbook.RunState, error) {
	var store runbook.RunStore = &runbook.Store{Dir: e.StateDir}
	if e.Runs != nil {
		store = e.Runs
	}
	runs, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*runbook.RunState
	for _, r := range runs {
		if r.Runbook != e.Book.Source || r.Env != e.Environment.Name {
			continue
		}
		if r.Target != phase && !strings.HasPrefix(r.Target, phase+"/") {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Watch starts a watch of phase (every WatchEvery for WatchFor), or continues the watch resumeID.
func (e *EngineRunner) Watch(ctx context.Context, phase, resumeID string, onRound func(*runbook.WatchState, runbook.WatchRound)) (*runbook.WatchState, error) {
	eng, err := e.engine(nil, nil)
	if err != nil {
		return nil, err
	}
	if resumeID != "" {
		return eng.ResumeWatch(ctx, resumeID, onRound)
	}
	every, span := e.WatchEvery, e.WatchFor
	if every <= 0 {
		every = DefaultWatchEvery
	}
	if span <= 0 {
		span = DefaultWatchFor
	}
	return eng.Watch(ctx, runbook.WatchOptions{Phase: phase, Every: every, For: span}, onRound)
}

// UnfinishedWatch is the newest watch of this environment that stopped before its end.
func (e *EngineRunner) UnfinishedWatch() (*runbook.WatchState, error) {
	w, err := (&runbook.Store{Dir: e.StateDir}).LatestWatch()
	if err != nil {
		return nil, nil // no watch yet
	}
	if w.Env != e.Environment.Name || (w.Status != runbook.StatusRunning && w.Status != runbook.StatusInterrupted) ||
		!time.Now().Before(w.EndsAt) {
		return nil, nil
	}
	return w, nil
}

// Follow calls fn with the run runID on every change until fn returns false or ctx ends; only
// shared runs can be followed.
func (e *EngineRunner) Follow(ctx context.Context, runID string, fn func(*runbook.RunState) bool) error {
	f, ok := e.Runs.(Following) // runbook/shared.Store
	if !ok {
		return errors.New("only shared runs can be followed")
	}
	return f.Follow(ctx, runID, fn)
}
