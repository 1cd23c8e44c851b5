package fake

import (
	"context"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
)

// Moment is one stretch of the fake history: the clusters from From on.
type Moment struct {
	From     time.Time
	Clusters []api.ClusterView
}

// ReplicationAt answers GET /replication?at= from History: the last moment that began at or
// before at.
func (a *API) ReplicationAt(_ context.Context, at time.Time) (api.ReplicationResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.ReplicationResponse{}, a.Err
	}
	a.AtCalls = append(a.AtCalls, at)
	rr := api.ReplicationResponse{At: &at, Collectors: []api.CollectorTopology{}, Clusters: []api.ClusterView{}}
	for _, m := range a.History {
		if !m.From.After(at) {
			rr.Clusters = m.Clusters
		}
	}
	return rr, nil
}

// Events answers GET /events from EventsR (newest first), honouring since, until and limit.
func (a *API) Events(_ context.Context, q client.EventsQuery) (api.EventsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return api.EventsResponse{}, a.Err
	}
	out := []api.Event{}
	for _, e := range a.EventsR {
		if (!q.Since.IsZero() && e.At.Before(q.Since)) || (!q.Until.IsZero() && !e.At.Before(q.Until)) {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		out = append(out, e)
	}
	return api.EventsResponse{Events: out}, nil
}

// StreamEvents plays Streamed once, then blocks until ctx ends.
func (a *API) StreamEvents(ctx context.Context, fn func(api.Event)) error {
	a.mu.Lock()
	err := a.Err
	var evs []api.Event
	if !a.eventsStreamed {
		evs, a.eventsStreamed = a.Streamed, true
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range evs {
		fn(e)
	}
	<-ctx.Done()
	return ctx.Err()
}

func member(name, role string, tl int64, upstream string, lag int64) api.Instance {
	in := api.Instance{Name: name, Address: "10.0.0." + map[string]string{"east-primary": "1", "east-replica1": "2", "east-cascade": "4"}[name] + ":5432",
		Up: true, Role: role, ServerVersion: 160004, Timeline: tl}
	if role == "standby" {
		in.Receiver = &api.WALReceiver{Connected: true, Status: "streaming", ApplicationName: name, ReceivedTimeline: tl}
		in.Upstream, in.UpstreamLagBytes = upstream, ptr(lag)
		in.PrimaryLagBytes = ptr(lag * 2)
	}
	return in
}

func orders(instances []api.Instance, slots ...api.Slot) api.ClusterView {
	v := api.ClusterView{Cluster: api.Cluster{SystemIdentifier: "7321560123456789012", Name: "orders", Instances: instances, Slots: slots},
		Collectors: []string{EastID}, UpdatedAt: Now}
	split := len(topology.Primaries(&v.Cluster)) > 1
	v.Split = split
	for _, in := range instances {
		if in.Role == "primary" {
			v.Timeline = max(v.Timeline, in.Timeline)
		}
	}
	return v
}

func westView() api.ClusterView {
	down := func(name string) api.Instance {
		return api.Instance{Name: name, Address: "10.1.0.1:5432", Role: "unknown",
			Error: "no report: collector prod-west has not pushed within two intervals"}
	}
	return api.ClusterView{Cluster: api.Cluster{SystemIdentifier: "7400112233445566778", Name: "west-primary", Timeline: 3,
		Instances: []api.Instance{down("west-primary"), down("west-subscriber")}}, Collectors: []string{WestID}, UpdatedAt: Now.Add(-5 * time.Minute)}
}

// billingView is a Patroni cluster twenty minutes after a switchover to billing-2: Patroni and
// PostgreSQL agree on the leader, billing-1 waits for a restart, and billing-3 is where they differ
// (Patroni says running, PostgreSQL does not answer the collector).
func billingView() api.ClusterView {
	pm := func(name, role, state string, lag *int64) api.PatroniMember {
		return api.PatroniMember{Name: name, Role: role, State: state, Host: "10.2.0." + name[len(name)-1:], Port: 5432, Timeline: 4, LagBytes: lag}
	}
	m1, m2, m3 := pm("billing-1", "replica", "streaming", ptr(int64(0))), pm("billing-2", "leader", "running", nil), pm("billing-3", "replica", "running", ptr(int64(96<<10)))
	m1.PendingRestart = true
	in := func(name, role string, self api.PatroniMember) api.Instance {
		i := member(name, role, 4, "billing-2", 0)
		i.Address = self.Host + ":5432"
		i.Patroni = &self
		return i
	}
	down := api.Instance{Name: "billing-3", Address: "10.2.0.3:5432", Role: "unknown", Patroni: &m3,
		Error: "FATAL: sorry, too many clients already"}
	switched := Now.Add(-20 * time.Minute)
	return api.ClusterView{Cluster: api.Cluster{SystemIdentifier: "7355000111222333444", Name: "billing", Timeline: 4,
		Instances: []api.Instance{in("billing-2", "primary", m2), in("billing-1", "standby", m1), down},
		Patroni: &api.PatroniCluster{Scope: "billing", Version: "3.0.2", Leader: "billing-2", ReportedBy: "billing-2",
			Members: []api.PatroniMember{m1, m2, m3},
			History: []api.PatroniSwitch{{Timeline: 3, LSN: "0/9000060", Reason: "no recovery target specified", At: &switched, NewLeader: "billing-2"}},
			Disagreements: []api.PatroniDisagreement{{Instance: "billing-3", Code: api.PatroniRunningButDown,
				Message: "Patroni says billing-3 is running; PostgreSQL does not answer"}}}},
		Collectors: []string{EastID}, UpdatedAt: Now}
}

// Failover is a fleet five minutes after a failover of orders: east-replica1 was promoted while
// east-primary still ran (a split brain), then east-primary was rewound and follows it; a slot was
// lost on the way. The history holds the cluster before, during and after.
func Failover() *API {
	before := orders([]api.Instance{member("east-primary", "primary", 1, "", 0), member("east-replica1", "standby", 1, "east-primary", 8192),
		member("east-cascade", "standby", 1, "east-replica1", 4096)},
		api.Slot{Instance: "east-primary", Name: "east_replica1", Type: "physical", Active: true, WALStatus: "reserved"},
		api.Slot{Instance: "east-replica1", Name: "east_cascade", Type: "physical", Active: true, WALStatus: "reserved"})
	split := orders([]api.Instance{member("east-primary", "primary", 1, "", 0), member("east-replica1", "primary", 2, "", 0),
		member("east-cascade", "standby", 2, "east-replica1", 4096)},
		api.Slot{Instance: "east-primary", Name: "east_replica1", Type: "physical", WALStatus: "lost"},
		api.Slot{Instance: "east-replica1", Name: "east_cascade", Type: "physical", Active: true, WALStatus: "reserved"})
	after := orders([]api.Instance{member("east-replica1", "primary", 2, "", 0), member("east-cascade", "standby", 2, "east-replica1", 4096),
		member("east-primary", "standby", 2, "east-replica1", 0)},
		api.Slot{Instance: "east-replica1", Name: "east_cascade", Type: "physical", Active: true, WALStatus: "reserved"},
		api.Slot{Instance: "east-replica1", Name: "east_primary", Type: "physical", Active: true, WALStatus: "reserved"})
	ev := func(id int64, ago time.Duration, kind, severity, instance, msg string) api.Event {
		return api.Event{ID: id, At: Now.Add(-ago), Kind: kind, Severity: severity, SystemIdentifier: before.SystemIdentifier,
			Cluster: "orders", Instance: instance, Message: msg}
	}
	return &API{
		Topology:    api.ReplicationResponse{Collectors: []api.CollectorTopology{}, Clusters: []api.ClusterView{after, billingView(), westView()}},
		CollectorsR: []api.Collector{{ID: EastID, Name: "prod-east", IntervalSeconds: 10}, {ID: WestID, Name: "prod-west", IntervalSeconds: 30}},
		History: []Moment{
			{From: Now.Add(-time.Hour), Clusters: []api.ClusterView{before, billingView(), westView()}},
			{From: Now.Add(-5 * time.Minute), Clusters: []api.ClusterView{split, billingView(), westView()}},
			{From: Now.Add(-2 * time.Minute), Clusters: []api.ClusterView{after, billingView(), westView()}},
		},
		EventsR: []api.Event{
			ev(7, time.Minute, api.EventStandbyAttached, api.SeverityInfo, "east-primary", "east-primary streams from east-replica1"),
			ev(6, 2*time.Minute, api.EventSplitBrainResolved, api.SeverityInfo, "", "split brain over: primary east-replica1"),
			ev(5, 4*time.Minute, api.EventSlotInvalidated, api.SeverityCritical, "east-primary",
				"slot east_replica1 on east-primary invalidated: the WAL it needs is gone (wal_status lost)"),
			ev(4, 5*time.Minute, api.EventSplitBrain, api.SeverityCritical, "", "split brain: 2 members answer as primary (east-primary, east-replica1)"),
			ev(3, 5*time.Minute, api.EventPromotion, api.SeverityCritical, "east-replica1", "east-replica1 promoted, replacing east-primary (timeline 1 → 2)"),
			{ID: 2, At: Now.Add(-20 * time.Minute), Kind: api.EventPatroniLeaderChanged, Severity: api.SeverityWarning,
				SystemIdentifier: "7355000111222333444", Cluster: "billing", Instance: "billing-2", Message: "Patroni leader billing-1 → billing-2"},
			{ID: 1, At: Now.Add(-time.Hour), Kind: api.EventCollectorRegistered, Severity: api.SeverityInfo, Message: "collector prod-east registered from east.example"},
		},
	}
}
