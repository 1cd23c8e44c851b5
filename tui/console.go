package tui

import (
	"context"
	"time"

	"github.com/pganalytics/pganalytics/tui/alerts"
	"github.com/pganalytics/pganalytics/tui/approvals"
	"github.com/pganalytics/pganalytics/tui/collectors"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/replication"
	runbookview "github.com/pganalytics/pganalytics/tui/runbook"
	smokeview "github.com/pganalytics/pganalytics/tui/smoke"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/topology"
	"github.com/pganalytics/pganalytics/tui/view"
)

// API is what the console's views read from the server.
type API interface {
	replication.Source
	topology.Source
	collectors.Source
	alerts.Source
	approvals.Source
}

// Options configure the console.
type Options struct {
	Context context.Context // the console stops when it ends
	Session Session
	API     API
	APIURL  string // shown in the header
	User    string // shown until the login answers
	Theme   theme.Theme
	Keys    keys.Map // zero value: keys.New()
	Now     func() time.Time

	Refresh    time.Duration // replication poll interval
	Thresholds replication.Thresholds
	NoStream   bool // poll only

	Smoke              smokeview.Suite // nil: SmokeUnavailable says why
	SmokeUnavailable   string
	Runner             runbookview.Runner // nil: RunbookUnavailable says why
	RunbookUnavailable string
}

// RollbackPhase is the runbook phase the Rollback view runs; the Runbook view runs the others.
const RollbackPhase = "rollback"

// New builds the console: Replication (shown first), Topology, Runbook, Smoke, Collectors, Alerts,
// Rollback, Approvals.
func New(o Options) *App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Keys.Quit.Keys() == nil {
		o.Keys = keys.New()
	}
	ctx, cancel := context.WithCancel(o.Context)
	env := view.Env{Context: ctx, Theme: o.Theme, Keys: o.Keys, Now: o.Now}
	runbookTab := func(title string, phases func(string) bool) Component {
		return runbookview.New(runbookview.Options{Env: env, Runner: o.Runner, Unavailable: o.RunbookUnavailable,
			Title: title, Phases: phases})
	}
	tabs := []tab{
		{"Replication", replication.New(replication.Options{Env: env, Source: o.API,
			Thresholds: o.Thresholds, Refresh: o.Refresh, NoStream: o.NoStream})},
		{"Topology", topology.New(topology.Options{Env: env, Source: o.API})},
		{"Runbook", runbookTab("Runbook", func(id string) bool { return id != RollbackPhase })},
		{"Smoke", smokeview.New(smokeview.Options{Env: env, Suite: o.Smoke, Unavailable: o.SmokeUnavailable})},
		{"Collectors", collectors.New(collectors.Options{Env: env, Source: o.API})},
		{"Alerts", alerts.New(alerts.Options{Env: env, Source: o.API})},
		{"Rollback", runbookTab("Rollback", func(id string) bool { return id == RollbackPhase })},
		{"Approvals", approvals.New(approvals.Options{Env: env, Source: o.API})},
	}
	return newApp(ctx, cancel, o, tabs)
}
