package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

var allAlerts = []string{
	store.AlertFailedAuth, store.AlertRateLimited, store.AlertCollectionFailures, store.AlertDBErrors,
	store.AlertAPILatency, store.AlertBufferUtilization, store.AlertCollectorStale, store.AlertReplicationLag,
	store.AlertReplicationLagWAL, store.AlertSlotInactive, store.AlertSlotWALAtRisk, store.AlertStandbyDisconnect,
	store.AlertInstanceDown,
}

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
		{"failed logins", func(e alertEnv) { e.failedLogins(6, e.base.Add(-10*time.Second)) }, map[string]int{store.AlertFailedAuth: 1}},
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
		}, map[string]int{store.AlertFailedAuth: 1}},
		{"rate limited in the previous minute", func(e alertEnv) {
			prev := e.base.Add(-time.Minute)
			e.stats(store.RequestStats{Server: "api-1", Minute: prev, RateLimited: 60})
			e.stats(store.RequestStats{Server: "api-2", Minute: prev, RateLimited: 50})
		}, map[string]int{store.AlertRateLimited: 1}},
		{"rate limited at the threshold", func(e alertEnv) { e.stats(store.RequestStats{Server: "api-1", RateLimited: 100}) }, nil},
		{"old statistics", func(e alertEnv) {
			e.stats(store.RequestStats{Server: "api-1", Minute: e.base.Add(-5 * time.Minute), RateLimited: 1000, DBErrors: 100, DurationP95Ms: 5000})
		}, nil},
		{"database errors", func(e alertEnv) { e.stats(store.RequestStats{Server: "api-1", DBErrors: 6}) }, map[string]int{store.AlertDBErrors: 1}},
		{"slow API", func(e alertEnv) {
			e.stats(store.RequestStats{Server: "api-1", DurationP95Ms: 80})
			e.stats(store.RequestStats{Server: "api-2", DurationP95Ms: 1500})
		}, map[string]int{store.AlertAPILatency: 1}},
		{"buffer filling", func(e alertEnv) {
			e.pushed("full", e.base, api.CollectorStatus{IntervalSeconds: 10, BufferUtilization: 0.8})
			e.pushed("fine", e.base, api.CollectorStatus{IntervalSeconds: 10, BufferUtilization: 0.7})
		}, map[string]int{store.AlertBufferUtilization: 1}},
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
		}, map[string]int{store.AlertCollectionFailures: 1}},
		{"stale collector", func(e alertEnv) {
			e.pushed("stale", e.base.Add(-time.Minute), api.CollectorStatus{IntervalSeconds: 10})
			e.pushed("slow but fine", e.base.Add(-time.Minute), api.CollectorStatus{IntervalSeconds: 60})
			e.pushed("fresh", e.base, api.CollectorStatus{IntervalSeconds: 10})
			mustCollector(e.t, e.s, "never pushed")
		}, map[string]int{store.AlertCollectorStale: 1}},
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
			store.AlertReplicationLag:    1, // behind
			store.AlertReplicationLagWAL: 1, // behind
			store.AlertSlotInactive:      2, // gone, orphan
			store.AlertSlotWALAtRisk:     1, // sub
			store.AlertStandbyDisconnect: 3, // gone (primary's view), orphan (slot nobody streams from), db4 (its receiver)
			store.AlertInstanceDown:      1, // db3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := newStore(t)
			e := alertEnv{t: t, s: s, pool: pool, base: time.Now().UTC()}
			tc.setup(e)
			alerts, err := s.Alerts(context.Background(), time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			firing := map[string]int{}
			names := map[string]bool{}
			for _, a := range alerts {
				names[a.Name] = true
				if a.Severity != store.SeverityWarning && a.Severity != store.SeverityCritical {
					t.Errorf("%s: severity %q", a.Name, a.Severity)
				}
				if a.Summary == "" {
					t.Errorf("%s: no summary", a.Name)
				}
				if !a.Firing {
					if a.Since != nil || a.Value > a.Threshold {
						t.Errorf("not firing %s: %+v", a.Name, a)
					}
					continue
				}
				firing[a.Name]++
				if a.Since == nil || a.Value <= a.Threshold || a.Labels != nil && a.Labels["collector_id"] == "" {
					t.Errorf("firing %s: %+v", a.Name, a)
				}
			}
			for _, n := range allAlerts {
				if !names[n] {
					t.Errorf("alert %s not evaluated", n)
				}
				if firing[n] != tc.want[n] {
					t.Errorf("%s: %d firing, want %d", n, firing[n], tc.want[n])
				}
			}
			if t.Failed() {
				t.Logf("alerts: %+v", alerts)
			}
		})
	}
}

func TestAlertsSince(t *testing.T) {
	dsn, pool := migratedDB(t)
	s, other := openStore(t, dsn, store.Options{}), openStore(t, dsn, store.Options{})
	ctx := ctxT(t)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(5 * time.Second) // keep every evaluation in one minute
	rateLimited := func(n int64) {
		wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-1", Minute: t0, RateLimited: n}), nil)
	}
	since := func(st *store.Store, at time.Time) *time.Time {
		t.Helper()
		alerts, err := st.Alerts(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(alerts, func(a api.Alert) bool { return a.Name == store.AlertRateLimited })
		if alerts[i].Firing != (alerts[i].Since != nil) {
			t.Fatalf("firing %v with since %v", alerts[i].Firing, alerts[i].Since)
		}
		return alerts[i].Since
	}

	rateLimited(500)
	if got := since(s, t0); got == nil || !got.Equal(t0) {
		t.Fatalf("since = %v, want %v", got, t0)
	}
	// Still firing later, on this server and on another one: the same since.
	for _, st := range []*store.Store{s, other} {
		if got := since(st, t0.Add(10*time.Second)); got == nil || !got.Equal(t0) {
			t.Fatalf("since = %v, want %v", got, t0)
		}
	}
	rateLimited(0)
	if got := since(other, t0.Add(20*time.Second)); got != nil {
		t.Fatalf("resolved alert has since %v", got)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM alert_state`); n != 0 {
		t.Fatalf("%d alert states kept after resolution", n)
	}
	rateLimited(500)
	if got := since(s, t0.Add(30*time.Second)); got == nil || !got.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("refired since = %v, want %v", got, t0.Add(30*time.Second))
	}
}
