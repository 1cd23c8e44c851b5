// Package fake is what the console's tests run against: an API with fixed answers at a fixed clock, a
// replication stream that plays a fixed sequence of topologies, and a Driver (with Press for keys)
// that runs a model as a program would.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/smoke"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/view"
)

// Now is the tests' clock: every age on screen is relative to it.
var Now = time.Date(2026, 2, 27, 15, 4, 5, 0, time.UTC)

// Clock returns Now.
func Clock() time.Time { return Now }

// API implements the sources of every view with fixed data. Zero value: empty fleet.
type API struct {
	mu          sync.Mutex
	Topology    api.ReplicationResponse // GET /replication
	Pushes      []api.CollectorTopology // played once on the first stream, then the stream idles
	CollectorsR []api.Collector         // GET /collectors
	AlertsR     api.AlertsResponse      // GET /alerts
	Silences    []api.SilenceRequest    // POST /alerts/silences received
	Err         error                   // when set, every request fails with it
	Deleted     []string                // ids DeleteCollector was called with
	History     []Moment                // GET /replication?at=, oldest first
	EventsR     []api.Event             // GET /events, newest first
	Streamed    []api.Event             // replication events played once on the first event stream
	AtCalls     []time.Time             // the times GET /replication?at= was asked for
	PendingR    []api.PendingApproval   // GET /runbook/approvals
	Decisions   []api.ApprovalRequest   // POST /runbook/runs/{id}/approvals received

	streamed, eventsStreamed bool
}

// Replication answers GET /replication.
func (a *API) Replication(_ context.Context, collectorID string) (api.ReplicationResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.ReplicationResponse{}, a.Err
	}
	if collectorID == "" {
		return a.Topology, nil
	}
	var out api.ReplicationResponse
	for _, t := range a.Topology.Collectors {
		if t.CollectorID == collectorID {
			out.Collectors = append(out.Collectors, t)
		}
	}
	return out, nil
}

// StreamReplication plays Pushes once, then blocks until ctx ends; with Err set it fails at once.
func (a *API) StreamReplication(ctx context.Context, fn func(api.CollectorTopology)) error {
	a.mu.Lock()
	err := a.Err
	var events []api.CollectorTopology
	if !a.streamed {
		events, a.streamed = a.Pushes, true
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range events {
		fn(e)
	}
	<-ctx.Done()
	return ctx.Err()
}

// Collectors answers GET /collectors, without the ones deleted.
func (a *API) Collectors(context.Context) ([]api.Collector, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return nil, a.Err
	}
	var out []api.Collector
	for _, c := range a.CollectorsR {
		if !contains(a.Deleted, c.ID) {
			out = append(out, c)
		}
	}
	return out, nil
}

// DeleteCollector records the id.
func (a *API) DeleteCollector(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return a.Err
	}
	for _, c := range a.CollectorsR {
		if c.ID == id {
			a.Deleted = append(a.Deleted, id)
			return nil
		}
	}
	return fmt.Errorf("api: 404 not_found: collector %s", id)
}

// DeletedIDs is a copy of the ids deleted so far.
func (a *API) DeletedIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.Deleted...)
}

// CreateSilence records the request and answers that one Alertmanager took it.
func (a *API) CreateSilence(_ context.Context, req api.SilenceRequest) (api.SilenceResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.SilenceResponse{}, a.Err
	}
	a.Silences = append(a.Silences, req)
	d, _ := time.ParseDuration(req.Duration)
	return api.SilenceResponse{StartsAt: Now, EndsAt: Now.Add(d), Alertmanagers: []api.AlertmanagerResult{{URL: "http://am:9093", OK: true, ID: "s-1"}}}, nil
}

// Alerts answers GET /alerts.
func (a *API) Alerts(context.Context) (api.AlertsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.AlertsResponse{}, a.Err
	}
	return a.AlertsR, nil
}

// SetErr makes every later request fail with err (nil heals).
func (a *API) SetErr(err error) {
	a.mu.Lock()
	a.Err = err
	a.mu.Unlock()
}

// ErrRefused is what an unreachable API looks like.
var ErrRefused = errors.New("api unreachable: dial tcp 127.0.0.1:8080: connect: connection refused")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Theme is the dark theme on a renderer forced to the Ascii profile, so screens compare as text.
func Theme() theme.Theme {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return theme.New(r, theme.Dark)
}

// Env is a view's environment in a test: the test's context, Theme, the default keys and Clock.
func Env(t testing.TB) view.Env {
	return view.Env{Context: t.Context(), Theme: Theme(), Keys: keys.New(), Now: Clock}
}

// Suite is a smoke suite that reports fixed results at once.
type Suite struct {
	Results []smoke.Result
	Err     error // returned before any result (unreachable, login refused)
}

// Selected lists the checks in order.
func (s *Suite) Selected() []string {
	names := make([]string, len(s.Results))
	for i, r := range s.Results {
		names[i] = r.Name
	}
	return names
}

// Stream reports every result, then the summary.
func (s *Suite) Stream(ctx context.Context, fn func(smoke.Result)) (smoke.Summary, error) {
	var sum smoke.Summary
	if s.Err != nil {
		return sum, s.Err
	}
	for _, r := range s.Results {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		fn(r)
		sum.Duration += r.Duration
		switch r.Status {
		case smoke.StatusPass:
			sum.Passed++
		case smoke.StatusFail:
			sum.Failed++
		default:
			sum.Skipped++
		}
	}
	return sum, nil
}

// SmokeSuite is a run with a pass, a failure and a skip among the real check names.
func SmokeSuite() *Suite {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	return &Suite{Results: []smoke.Result{
		{Name: smoke.CheckHealth, Status: smoke.StatusPass, Duration: ms(12), Message: "status healthy, database healthy, cache healthy"},
		{Name: smoke.CheckSecurityHeaders, Status: smoke.StatusPass, Duration: ms(8), Message: "X-Frame-Options, X-Content-Type-Options, CSP, Referrer-Policy present"},
		{Name: smoke.CheckTLS, Status: smoke.StatusSkip, Duration: 0, Message: "plain HTTP: no certificate to check"},
		{Name: smoke.CheckLogin, Status: smoke.StatusPass, Duration: ms(95), Message: "admin logged in with role admin; bad credentials get one generic 401"},
		{Name: smoke.CheckRBAC, Status: smoke.StatusFail, Duration: ms(41), Message: "viewer on /api/v1/users got 200, want 403: fix the API's role check"},
		{Name: smoke.CheckRateLimit, Status: smoke.StatusPass, Duration: ms(1830), Message: "429 after 101 requests, Retry-After 37"},
	}}
}

// PendingApprovals is GET /runbook/approvals.
func (a *API) PendingApprovals(context.Context) ([]api.PendingApproval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return nil, a.Err
	}
	return append([]api.PendingApproval(nil), a.PendingR...), nil
}

// DecideApproval records the decision and takes the step off the pending list.
func (a *API) DecideApproval(_ context.Context, runID string, req api.ApprovalRequest) (api.Approval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.Approval{}, a.Err
	}
	a.Decisions = append(a.Decisions, req)
	for i, p := range a.PendingR {
		if p.RunID == runID && p.Phase == req.Phase && p.Step == req.Step {
			a.PendingR = append(a.PendingR[:i], a.PendingR[i+1:]...)
			break
		}
	}
	return api.Approval{RunID: runID, Phase: req.Phase, Step: req.Step, Decision: req.Decision, User: "bob", Comment: req.Comment}, nil
}
