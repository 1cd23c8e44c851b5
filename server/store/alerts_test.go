package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/deploy"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
	"github.com/pganalytics/pganalytics/server/store"
)

// The shipped rules' names.
const (
	alertFailedAuth         = "FailedAuthHigh"
	alertRateLimited        = "RateLimitedHigh"
	alertCollectionFailures = "CollectionFailuresHigh"
	alertDBErrors           = "DBErrorsHigh"
	alertAPILatency         = "APILatencyP95High"
	alertBufferUtilization  = "CollectorBufferHigh"
	alertCollectorStale     = "CollectorStale"
	alertReplicationLag     = "ReplicationLagHigh"
	alertReplicationLagWAL  = "ReplicationLagBytesHigh"
	alertSlotInactive       = "ReplicationSlotInactive"
	alertSlotWALAtRisk      = "ReplicationSlotWALAtRisk"
	alertStandbyDisconnect  = "StandbyDisconnected"
	alertInstanceDown       = "InstanceDown"
)

type alertEnv struct {
	t    *testing.T
	s    *store.Store
	pool *pgxpool.Pool
	base time.Time // setups place their data relative to it; Alerts is evaluated just after
}

func (e alertEnv) ctx() context.Context { return context.Background() }

func (e alertEnv) failedLogins(n int, at time.Time) {
	for range n {
		wantErr(e.t, e.s.Audit(e.ctx(), api.AuditEntry{At: at, Actor: "anonymous", Action: "login_failed", Success: false}), nil)
	}
}

func (e alertEnv) stats(st store.RequestStats) {
	if st.Minute.IsZero() {
		st.Minute = e.base
	}
	wantErr(e.t, e.s.RecordRequestStats(e.ctx(), st), nil)
}

// pushed is a collector that last pushed at lastPush with the given status counters history.
func (e alertEnv) pushed(name string, lastPush time.Time, status api.CollectorStatus) api.Collector {
	c := mustCollector(e.t, e.s, name)
	if _, err := e.s.Ingest(e.ctx(), c.ID, &api.PushRequest{CollectedAt: lastPush, Status: &status}); err != nil {
		e.t.Fatal(err)
	}
	exec(e.t, e.pool, `UPDATE collectors SET last_push_at = $2 WHERE id = $1`, c.ID, lastPush)
	exec(e.t, e.pool, `DELETE FROM collector_status_history WHERE collector_id = $1`, c.ID)
	return c
}

func (e alertEnv) history(c api.Collector, at time.Time, collections, failures int64) {
	exec(e.t, e.pool, `INSERT INTO collector_status_history VALUES ($1, $2, $3, $4)`, c.ID, at, collections, failures)
}

func (e alertEnv) snapshot(name string, snap api.Snapshot) {
	c := mustCollector(e.t, e.s, name)
	if _, err := e.s.Ingest(e.ctx(), c.ID, &api.PushRequest{Snapshot: &snap, Status: &api.CollectorStatus{IntervalSeconds: 10}}); err != nil {
		e.t.Fatal(err)
	}
}

func healthyCluster() api.Cluster {
	return api.Cluster{
		SystemIdentifier: "7345",
		Instances: []api.Instance{
			{Name: "db1", Address: "db1:5432", Up: true, Role: "primary"},
			{Name: "db2", Address: "db2:5432", Up: true, Role: "standby", Receiver: &api.WALReceiver{Connected: true, Status: "streaming"}},
		},
		Standbys: []api.Standby{{ApplicationName: "standby1", State: "streaming", SlotName: "standby1", ReplayLagSeconds: 0.5, ReplayLagBytes: 4096}},
		Slots:    []api.Slot{{Name: "standby1", Type: "physical", Active: true, WALStatus: "reserved"}},
	}
}

func TestAlerts(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		setup func(e alertEnv)
		want  map[string]int // firing entries per alert; every other alert must not fire
	}{
		{"quiet", func(alertEnv) {}, nil},
		{"failed logins", func(e alertEnv) { e.failedLogins(6, e.base.Add(-10*time.Second)) }, map[string]int{alertFailedAuth: 1}},
		{"failed logins at the threshold", func(e alertEnv) { e.failedLogins(5, e.base.Add(-10*time.Second)) }, nil},
		{"failed logins three minutes ago", func(e alertEnv) { e.failedLogins(6, e.base.Add(-3*time.Minute)) }, nil},
		{"successful logins", func(e alertEnv) {
			for range 10 {
				wantErr(e.t, e.s.Audit(e.ctx(), api.AuditEntry{Actor: "user:alice", Action: "login", Success: true}), nil)
			}
		}, nil},
		{"auth failures reported by two servers", func(e alertEnv) {
			e.stats(store.RequestStats{Server: "api-1", AuthFailures: 4})
			e.stats(store.RequestStats{Server: "api-2", AuthFailures: 3})
		}, map[string]int{alertFailedAuth: 1}},
		{"rate limited in the previous minute", func(e alertEnv) {
			prev := e.base.Add(-time.Minute)
			e.stats(store.RequestStats{Server: "api-1", Minute: prev, RateLimited: 60})
			e.stats(store.RequestStats{Server: "api-2", Minute: prev, RateLimited: 50})
		}, map[string]int{alertRateLimited: 1}},
		{"rate limited at the threshold", func(e alertEnv) { e.stats(store.RequestStats{Server: "api-1", RateLimited: 100}) }, nil},
		{"old statistics", func(e alertEnv) {
			e.stats(store.RequestStats{Server: "api-1", Minute: e.base.Add(-5 * time.Minute), RateLimited: 1000, DBErrors: 100, DurationP95Ms: 5000})
		}, nil},
		{"database errors", func(e alertEnv) { e.stats(store.RequestStats{Server: "api-1", DBErrors: 6}) }, map[string]int{alertDBErrors: 1}},
		{"slow API", func(e alertEnv) {
			e.stats(store.RequestStats{Server: "api-1", DurationP95Ms: 80})
			e.stats(store.RequestStats{Server: "api-2", DurationP95Ms: 1500})
		}, map[string]int{alertAPILatency: 1}},
		{"buffer filling", func(e alertEnv) {
			e.pushed("full", e.base, api.CollectorStatus{IntervalSeconds: 10, BufferUtilization: 0.8})
			e.pushed("fine", e.base, api.CollectorStatus{IntervalSeconds: 10, BufferUtilization: 0.7})
		}, map[string]int{alertBufferUtilization: 1}},
		{"collection failures", func(e alertEnv) {
			bad := e.pushed("bad", e.base, api.CollectorStatus{IntervalSeconds: 10})
			e.history(bad, e.base.Add(-20*time.Minute), 50, 0)
			e.history(bad, e.base.Add(-15*time.Minute), 100, 0) // baseline: the last report a window ago
			e.history(bad, e.base.Add(-time.Minute), 200, 5)    // 5 of 100 collections failed
			good := e.pushed("good", e.base, api.CollectorStatus{IntervalSeconds: 10})
			e.history(good, e.base.Add(-time.Minute), 1000, 1) // no baseline: since start, 0.1 %
			restarted := e.pushed("restarted", e.base, api.CollectorStatus{IntervalSeconds: 10})
			e.history(restarted, e.base.Add(-15*time.Minute), 5000, 0)
			e.history(restarted, e.base.Add(-time.Minute), 300, 0) // counters reset: 0 of 300
		}, map[string]int{alertCollectionFailures: 1}},
		{"stale collector", func(e alertEnv) {
			e.pushed("stale", e.base.Add(-time.Minute), api.CollectorStatus{IntervalSeconds: 10})
			e.pushed("slow but fine", e.base.Add(-time.Minute), api.CollectorStatus{IntervalSeconds: 60})
			e.pushed("fresh", e.base, api.CollectorStatus{IntervalSeconds: 10})
			mustCollector(e.t, e.s, "never pushed")
		}, map[string]int{alertCollectorStale: 1}},
		{"healthy replication", func(e alertEnv) {
			e.snapshot("c", api.Snapshot{Clusters: []api.Cluster{healthyCluster()}})
		}, nil},
		{"broken replication", func(e alertEnv) {
			cl := healthyCluster()
			cl.Standbys = []api.Standby{
				{ApplicationName: "behind", State: "streaming", SlotName: "standby1", ReplayLagSeconds: 45, ReplayLagBytes: 100 * mib},
				{ApplicationName: "gone", State: "disconnected", SlotName: "gone"},
			}
			cl.Slots = append(cl.Slots,
				api.Slot{Name: "gone", Type: "physical", Active: false, WALStatus: "extended"},
				api.Slot{Name: "orphan", Type: "physical", Active: false, WALStatus: "reserved"},
				api.Slot{Name: "sub", Type: "logical", Active: true, WALStatus: "lost"},
			)
			cl.Instances = append(cl.Instances,
				api.Instance{Name: "db3", Address: "db3:5432", Up: false, Error: "connection refused"},
				api.Instance{Name: "db4", Address: "db4:5432", Up: true, Role: "standby", Receiver: &api.WALReceiver{Connected: false, Status: "stopping"}},
			)
			e.snapshot("c", api.Snapshot{Clusters: []api.Cluster{cl}})
		}, map[string]int{
			alertReplicationLag:    1, // behind
			alertReplicationLagWAL: 1, // behind
			alertSlotInactive:      2, // gone, orphan
			alertSlotWALAtRisk:     2, // gone (extended: warning), sub (lost: critical)
			alertStandbyDisconnect: 3, // gone (primary's view), orphan (slot nobody streams from), db4 (its receiver)
			alertInstanceDown:      1, // db3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := newStore(t)
			e := alertEnv{t: t, s: s, pool: pool, base: time.Now().UTC()}
			tc.setup(e)
			obs, err := s.Observe(context.Background(), time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			// Every quantity of the shipped rules is observed at least globally.
			seen := map[string]bool{}
			for _, o := range obs {
				seen[o.Quantity] = true
			}
			for _, q := range []string{"auth_failures_per_minute", "rate_limited_per_minute", "db_errors_per_minute", "api_p95_ms"} {
				if !seen[q] {
					t.Errorf("%s not observed", q)
				}
			}
			// The objects whose condition holds now, per rule (pending or firing: for is not over yet).
			holding := map[string]map[string]bool{}
			for _, a := range alerting.Evaluate(shippedRules(t), obs, nil, time.Now()) {
				if a.Summary == "" || a.Value == a.Threshold {
					t.Errorf("%s: %+v", a.Rule, a)
				}
				if holding[a.Rule] == nil {
					holding[a.Rule] = map[string]bool{}
				}
				holding[a.Rule][a.Key] = true
			}
			for _, n := range []string{alertFailedAuth, alertRateLimited, alertCollectionFailures, alertDBErrors, alertAPILatency,
				alertBufferUtilization, alertCollectorStale, alertReplicationLag, alertReplicationLagWAL, alertSlotInactive,
				alertSlotWALAtRisk, alertStandbyDisconnect, alertInstanceDown} {
				if len(holding[n]) != tc.want[n] {
					t.Errorf("%s: %d objects, want %d", n, len(holding[n]), tc.want[n])
				}
			}
			if t.Failed() {
				t.Logf("observations: %+v", obs)
			}
		})
	}
}

func shippedRules(t *testing.T) *alerting.Rules {
	t.Helper()
	rs, err := alerting.Parse("alerts.toml", deploy.AlertRules)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestAlertStateAcrossServers: one store saves an evaluation, another loads it whole; of two
// processes running as leader only one runs at a time, and the other takes over once it is gone.
func TestAlertStateAcrossServers(t *testing.T) {
	dsn, _ := migratedDB(t)
	a, b := openStore(t, dsn, store.Options{}), openStore(t, dsn, store.Options{})
	ctx := ctxT(t)
	if st, err := b.LoadAlerts(ctx); err != nil || !st.EvaluatedAt.IsZero() || len(st.Alerts) != 0 {
		t.Fatalf("before any evaluation: %+v %v", st, err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	want := alerting.Evaluate(shippedRules(t), []alerting.Observation{
		{Quantity: "db_errors_per_minute", Value: 9},
		{Quantity: "replay_lag_seconds", Value: 400, Labels: map[string]string{"cluster": "7", "application_name": "s1"}},
	}, nil, at)
	wantErr(t, a.SaveAlerts(ctx, at, "api-1", want), nil)
	st, err := b.LoadAlerts(ctx)
	if err != nil || !st.EvaluatedAt.Equal(at) || st.EvaluatedBy != "api-1" || len(st.Alerts) != len(want) || len(want) != 3 {
		t.Fatalf("loaded %+v %v, want %d alerts", st, err, len(want))
	}
	for i := range want {
		if st.Alerts[i].ID() != want[i].ID() || st.Alerts[i].State != want[i].State || !st.Alerts[i].ActiveAt.Equal(want[i].ActiveAt) {
			t.Fatalf("alert %d: %+v, want %+v", i, st.Alerts[i], want[i])
		}
	}

	var running sync.Map
	var both atomic.Bool
	lead := func(s *store.Store, name string) (stop func()) {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.RunAsLeader(lctx, store.AlertingLockID, 100*time.Millisecond, func(ctx context.Context) {
				running.Store(name, true)
				running.Range(func(k, _ any) bool {
					if k != name {
						both.Store(true)
					}
					return true
				})
				<-ctx.Done()
				running.Delete(name)
			})
		}()
		return func() { cancel(); <-done }
	}
	stopA := lead(a, "a")
	waitFor(t, func() bool { _, ok := running.Load("a"); return ok })
	stopB := lead(b, "b")
	defer stopB()
	time.Sleep(300 * time.Millisecond)
	if _, ok := running.Load("b"); ok || both.Load() {
		t.Fatal("two leaders at once")
	}
	stopA()
	waitFor(t, func() bool { _, ok := running.Load("b"); return ok })
	if both.Load() {
		t.Fatal("two leaders at once")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestObserveHistoryAndRoles: the quantities that need a metric's recent history (a slot's time to
// loss, wraparound, archiver failures) and the primaries of a cluster seen by several collectors.
func TestObserveHistoryAndRoles(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	now := time.Now().UTC()
	const mib = 1 << 20
	cl := healthyCluster()
	c := mustCollector(t, s, "hist")
	sample := func(name string, v float64, ago time.Duration, labels ...string) api.Sample {
		l := map[string]string{"instance": "db1:5432"}
		for i := 0; i+1 < len(labels); i += 2 {
			l[labels[i]] = labels[i+1]
		}
		return api.Sample{Name: name, Value: v, Timestamp: now.Add(-ago), Labels: l}
	}
	slot := []string{"slot_name", "standby1", "slot_type", "physical"}
	if _, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: now, Snapshot: &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{cl}},
		Metrics: []api.Sample{
			sample("pg_replication_slot_retained_bytes", 100*mib, 10*time.Minute, slot...),
			sample("pg_replication_slot_retained_bytes", 400*mib, 5*time.Minute, slot...),
			sample("pg_replication_slot_retained_bytes", 700*mib, 0, slot...), // 1 MiB/s
			sample("pg_replication_slot_safe_wal_size_bytes", 500*mib, 5*time.Minute, slot...),
			sample("pg_replication_slot_safe_wal_size_bytes", 300*mib, 0, slot...), // 300 s left
			sample("pg_database_xid_wraparound_pct", 80, 0, "datname", "app"),
			sample("pg_database_xid_wraparound_pct", 1, 0, "datname", "postgres"),
			sample("pg_archiver_failed_total", 3, 14*time.Minute),
			sample("pg_archiver_failed_total", 7, 0),
			sample("pg_archiver_failed_total", 9, 20*time.Minute), // outside the window
		}}); err != nil {
		t.Fatal(err)
	}
	// Another collector sees another primary of the same cluster: two primaries.
	other := cl
	other.Instances = []api.Instance{{Name: "db9", Address: "db9:5432", Up: true, Role: "primary"}}
	other.Standbys, other.Slots = nil, nil
	c2 := mustCollector(t, s, "other")
	if _, err := s.Ingest(ctx, c2.ID, &api.PushRequest{CollectedAt: now, Snapshot: &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{other}}}); err != nil {
		t.Fatal(err)
	}
	obs, err := s.Observe(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]alerting.Observation{}
	for _, o := range obs {
		switch o.Quantity {
		case "slot_time_to_loss_seconds", "archiver_failures_15m", "cluster_primaries":
			got[o.Quantity] = o
		case "xid_wraparound_percent":
			got[o.Quantity+"/"+o.Labels["datname"]] = o
		}
	}
	ttl := got["slot_time_to_loss_seconds"]
	if ttl.Value < 295 || ttl.Value > 305 || ttl.Labels["cluster"] != cl.SystemIdentifier || ttl.Labels["slot_name"] != "standby1" || ttl.Labels["instance"] != "db1" {
		t.Errorf("time to loss %+v, want 300 s for slot standby1 of db1", ttl)
	}
	if w := got["xid_wraparound_percent/app"]; w.Value != 80 || w.Labels["instance"] != "db1" {
		t.Errorf("wraparound %+v", w)
	}
	if a := got["archiver_failures_15m"]; a.Value != 4 {
		t.Errorf("archiver failures %+v, want 4 in the window", a)
	}
	if p := got["cluster_primaries"]; p.Value != 2 || p.Labels["cluster"] != cl.SystemIdentifier {
		t.Errorf("primaries %+v", p)
	}
	fired := map[string]string{}
	for _, a := range alerting.Evaluate(shippedRules(t), obs, nil, now) {
		if a.Severity == alerting.SeverityCritical || fired[a.Rule] == "" {
			fired[a.Rule] = a.Severity + "/" + a.State
		}
	}
	for rule, want := range map[string]string{
		"ReplicationSlotTimeToLoss": "critical/firing", "ClusterTwoPrimaries": "critical/firing",
		"XIDWraparound": "critical/firing", "ArchiverFailing": "warning/pending",
	} {
		if fired[rule] != want {
			t.Errorf("%s: %q, want %q", rule, fired[rule], want)
		}
	}
	if _, ok := fired["ClusterWithoutPrimary"]; ok {
		t.Error("ClusterWithoutPrimary with two primaries")
	}
}

// TestObservePrimaryChange: a cluster's primary and timeline are remembered; when a standby is
// promoted (and the old primary is gone) the change is observed, and the shipped rules fire.
func TestObservePrimaryChange(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	c := mustCollector(t, s, "roles")
	push := func(cl api.Cluster) {
		t.Helper()
		now := time.Now().UTC()
		if _, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: now, Snapshot: &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{cl}}}); err != nil {
			t.Fatal(err)
		}
	}
	changes := func() (primary, timeline *alerting.Observation) {
		t.Helper()
		obs, err := s.Observe(ctx, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		for i := range obs {
			switch obs[i].Quantity {
			case "primary_change_age_seconds":
				primary = &obs[i]
			case "timeline_change_age_seconds":
				timeline = &obs[i]
			}
		}
		return primary, timeline
	}
	before := healthyCluster()
	before.Timeline = 1
	push(before)
	if p, tl := changes(); p != nil || tl != nil {
		t.Fatalf("changes at first sight: %+v %+v", p, tl)
	}
	if p, tl := changes(); p != nil || tl != nil {
		t.Fatalf("changes without a change: %+v %+v", p, tl)
	}
	after := healthyCluster()
	after.Timeline = 2
	after.Instances = []api.Instance{
		{Name: "db1", Address: "db1:5432", Up: false, Error: "connection refused"},
		{Name: "db2", Address: "db2:5432", Up: true, Role: "primary", Timeline: 2},
	}
	after.Standbys, after.Slots = nil, nil
	push(after)
	p, tl := changes()
	if p == nil || p.Value > 5 || p.Labels["primary"] != "db2:5432" || tl == nil || tl.Value > 5 {
		t.Fatalf("after the promotion: %+v %+v", p, tl)
	}
	obs, err := s.Observe(ctx, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, a := range alerting.Evaluate(shippedRules(t), obs, nil, time.Now()) {
		fired[a.Rule] = fired[a.Rule] || a.State == alerting.StateFiring
	}
	if !fired["PrimaryChanged"] || !fired["TimelineSwitched"] {
		t.Fatalf("fired %v", fired)
	}
}
