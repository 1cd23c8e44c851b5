package topology

import (
	"slices"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func primary(name string, tl int64, lsn string) api.Instance {
	return api.Instance{Name: name, Address: "127.0.0.1:" + port(name), Up: true, Role: "primary", Timeline: tl, WALLSN: lsn}
}

func standby(name, sender string, tl int64, lsn string) api.Instance {
	return api.Instance{Name: name, Address: "127.0.0.1:" + port(name), Up: true, Role: "standby", Timeline: tl, WALLSN: lsn,
		Receiver: &api.WALReceiver{Connected: true, Status: "streaming", SenderHost: "localhost", SenderPort: atoi(port(sender)), ApplicationName: name}}
}

func port(name string) string {
	return map[string]string{"a": "5001", "b": "5002", "c": "5003", "": "0"}[name]
}
func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func row(upstream, app, sync string) api.Standby {
	return api.Standby{Upstream: upstream, ApplicationName: app, State: "streaming", SyncState: sync}
}

func collector(id string, at time.Time, stale bool, clusters ...api.Cluster) api.CollectorTopology {
	return api.CollectorTopology{CollectorID: id, CollectorName: "col-" + id, Stale: stale, Snapshot: api.Snapshot{CollectedAt: at, Clusters: clusters}}
}

func cluster(instances []api.Instance, rows []api.Standby, slots ...api.Slot) api.Cluster {
	return api.Cluster{SystemIdentifier: "7", Instances: instances, Standbys: rows, Slots: slots}
}

func names(c api.ClusterView) []string {
	var out []string
	for _, in := range c.Instances {
		out = append(out, in.Name+"<"+in.Upstream)
	}
	return out
}

// TestMergeOneCollectorPerInstance: each member's own collector sends only it; the server's view is
// the whole chain a → b → c, matched by sender address and rows.
func TestMergeOneCollectorPerInstance(t *testing.T) {
	tops := []api.CollectorTopology{
		collector("3", t0, false, cluster([]api.Instance{standby("c", "b", 1, "0/100")}, nil)),
		collector("2", t0, false, cluster([]api.Instance{standby("b", "a", 1, "0/180")}, []api.Standby{row("b", "c", "async")})),
		collector("1", t0.Add(time.Second), false, cluster([]api.Instance{primary("a", 1, "0/200")}, []api.Standby{row("a", "b", "sync")},
			api.Slot{Instance: "a", Name: "b", Type: "physical", Active: true})),
	}
	views := Merge(tops, nil)
	if len(views) != 1 {
		t.Fatalf("views = %+v", views)
	}
	v := views[0]
	if got, want := names(v), []string{"a<", "b<a", "c<b"}; !slices.Equal(got, want) {
		t.Errorf("tree = %v, want %v", got, want)
	}
	if v.Name != "a" || !slices.Equal(v.Collectors, []string{"1", "2", "3"}) || !v.UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("name %q collectors %v updated %v", v.Name, v.Collectors, v.UpdatedAt)
	}
	if c := v.Instances[2]; c.PrimaryLagBytes == nil || *c.PrimaryLagBytes != 0x100 {
		t.Errorf("c lag to primary = %v", c.PrimaryLagBytes)
	}
	if len(v.Slots) != 1 || len(v.Standbys) != 2 {
		t.Errorf("slots %+v rows %+v", v.Slots, v.Standbys)
	}
}

func TestMergeNames(t *testing.T) {
	base := func(name string) []api.CollectorTopology {
		c := cluster([]api.Instance{primary("a", 1, "0/1")}, nil)
		c.Name = name
		return []api.CollectorTopology{collector("1", t0, false, c)}
	}
	tests := []struct {
		name, configured string
		assigned         map[string]string
		want             string
	}{
		{"primary's name by default", "", nil, "a"},
		{"assigned before", "", map[string]string{"7": "orders"}, "orders"},
		{"configured wins", "billing", map[string]string{"7": "orders"}, "billing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Merge(base(tt.configured), tt.assigned)[0].Name; got != tt.want {
				t.Errorf("name = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMergeStaleCollector: a member whose collector stopped pushing is down in the merged view, and
// its rows and slots are gone with it; a fresh report of the same member wins over the stale one.
func TestMergeStaleCollector(t *testing.T) {
	old := cluster([]api.Instance{primary("a", 1, "0/1")}, []api.Standby{row("a", "b", "async")}, api.Slot{Instance: "a", Name: "s"})
	v := Merge([]api.CollectorTopology{collector("1", t0, true, old)}, nil)[0]
	streaming := slices.ContainsFunc(v.Standbys, func(s api.Standby) bool { return s.State != StateDisconnected })
	if in := v.Instances[0]; in.Up || in.Error == "" || streaming || len(v.Slots) != 0 {
		t.Errorf("stale member = %+v rows %v slots %v", in, v.Standbys, v.Slots)
	}
	v = Merge([]api.CollectorTopology{collector("1", t0.Add(time.Minute), true, old), collector("2", t0, false, old)}, nil)[0]
	if len(v.Instances) != 1 || !v.Instances[0].Up || len(v.Slots) != 1 {
		t.Errorf("fresh report lost to a stale one: %+v", v)
	}
}

// TestMergeSnapshotWithoutUpstreams: a collector from before upstreams sent rows and slots at the
// cluster level only; they are its primary's.
func TestMergeSnapshotWithoutUpstreams(t *testing.T) {
	c := cluster([]api.Instance{primary("a", 1, "0/2"), standby("b", "a", 1, "0/1")},
		[]api.Standby{{ApplicationName: "b", State: "streaming"}}, api.Slot{Name: "b", Type: "physical"})
	v := Merge([]api.CollectorTopology{collector("1", t0, false, c)}, nil)[0]
	if v.Standbys[0].Upstream != "a" || v.Standbys[0].Instance != "b" || v.Slots[0].Instance != "a" || v.Instances[1].Upstream != "a" {
		t.Errorf("view = %+v", v.Cluster)
	}
}

func TestSameEndpoint(t *testing.T) {
	tests := []struct {
		address, host string
		port          int
		want          bool
	}{
		{"127.0.0.1:5432", "localhost", 5432, true},
		{"[::1]:5432", "127.0.0.1", 5432, true},
		{"db1:5432", "DB1.", 5432, true},
		{"db1:5432", "db1", 5433, false},
		{"db1:5432", "db2", 5432, false},
		{"/var/run/postgresql:5432", "/var/run/postgresql", 5432, true},
		{"db1:5432", "", 0, false},
	}
	for _, tt := range tests {
		if got := SameEndpoint(tt.address, tt.host, tt.port); got != tt.want {
			t.Errorf("SameEndpoint(%q, %q, %d) = %v", tt.address, tt.host, tt.port, got)
		}
	}
}

func view(instances []api.Instance, rows []api.Standby, slots ...api.Slot) *api.ClusterView {
	v := &api.ClusterView{Cluster: cluster(instances, rows, slots...)}
	v.Name = "main"
	Link(&v.Cluster)
	return v
}

func kinds(evs []api.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind+":"+e.Instance)
	}
	slices.Sort(out)
	return out
}

func TestDiff(t *testing.T) {
	chain := func() *api.ClusterView {
		return view([]api.Instance{primary("a", 1, "0/3"), standby("b", "a", 1, "0/2"), standby("c", "b", 1, "0/1")},
			[]api.Standby{row("a", "b", "async"), row("b", "c", "async")}, api.Slot{Instance: "a", Name: "b", Type: "physical", WALStatus: "reserved"})
	}
	started := t0.Add(-time.Hour)
	restarted := t0
	tests := []struct {
		name string
		next func() *api.ClusterView
		want []string
	}{
		{"nothing changed", chain, nil},
		{"promotion of b, a still up: split brain", func() *api.ClusterView {
			return view([]api.Instance{primary("a", 1, "0/3"), primary("b", 2, "0/4"), standby("c", "b", 2, "0/1")},
				[]api.Standby{row("b", "c", "async")}, api.Slot{Instance: "a", Name: "b", Type: "physical", WALStatus: "reserved"})
		}, []string{"promotion:b", "split_brain:", "timeline_switch:c"}},
		{"a down, b promoted", func() *api.ClusterView {
			down := primary("a", 0, "")
			down.Up, down.Role = false, "unknown"
			return view([]api.Instance{down, primary("b", 2, "0/4"), standby("c", "b", 2, "0/1")}, []api.Standby{row("b", "c", "async")})
		}, []string{"instance_unreachable:a", "promotion:b", "timeline_switch:c"}},
		{"no primary", func() *api.ClusterView {
			v := chain()
			v.Instances[0].Role = "standby"
			Link(&v.Cluster)
			return v
		}, []string{"no_primary:"}},
		{"c re-pointed to a, b sync", func() *api.ClusterView {
			return view([]api.Instance{primary("a", 1, "0/3"), standby("b", "a", 1, "0/2"), standby("c", "a", 1, "0/1")},
				[]api.Standby{row("a", "b", "sync"), row("a", "c", "async")}, api.Slot{Instance: "a", Name: "b", Type: "physical", WALStatus: "reserved"})
		}, []string{"standby_repointed:c", "sync_state_changed:b"}},
		{"slot lost, slot created", func() *api.ClusterView {
			v := chain()
			v.Slots[0].WALStatus = "lost"
			v.Slots = append(v.Slots, api.Slot{Instance: "a", Name: "new", Type: "logical"})
			return v
		}, []string{"slot_created:a", "slot_invalidated:a"}},
		{"slot dropped", func() *api.ClusterView {
			v := chain()
			v.Slots = nil
			return v
		}, []string{"slot_dropped:a"}},
		{"unmonitored standby attached", func() *api.ClusterView {
			v := chain()
			v.Standbys = append(v.Standbys, row("a", "analytics", "async"))
			return v
		}, []string{"standby_attached:"}},
		{"restart", func() *api.ClusterView {
			v := chain()
			v.Instances[1].StartedAt = &restarted
			return v
		}, []string{"instance_restarted:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := chain()
			prev.Instances[1].StartedAt = &started
			next := tt.next()
			if next.Instances[1].StartedAt == nil {
				next.Instances[1].StartedAt = &started
			}
			evs := Diff(prev, next, t0)
			if got := kinds(evs); !slices.Equal(got, tt.want) {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
			for _, e := range evs {
				if e.Cluster != "main" || e.SystemIdentifier != "7" || !e.At.Equal(t0) || e.Message == "" || e.Severity == "" {
					t.Errorf("event %+v", e)
				}
				if e.Kind == api.EventPromotion && (e.Details["old_timeline"] != int64(1) || e.Details["new_timeline"] != int64(2)) {
					t.Errorf("promotion details %v", e.Details)
				}
			}
		})
	}
}

// TestDiffSplitBrainResolved: the old primary rewound and back as a standby of the new one.
func TestDiffSplitBrainResolved(t *testing.T) {
	split := view([]api.Instance{primary("a", 1, "0/3"), primary("b", 2, "0/4")}, nil)
	down := primary("a", 0, "")
	down.Up = false
	stopped := view([]api.Instance{down, primary("b", 2, "0/4")}, nil)
	rejoined := view([]api.Instance{standby("a", "b", 2, "0/4"), primary("b", 2, "0/4")}, []api.Standby{row("b", "a", "async")})
	if got := kinds(Diff(split, stopped, t0)); !slices.Equal(got, []string{"instance_unreachable:a", "split_brain_resolved:"}) {
		t.Errorf("stop old primary: %v", got)
	}
	if got := kinds(Diff(stopped, rejoined, t0)); !slices.Equal(got, []string{"instance_reachable:a", "standby_attached:a"}) {
		t.Errorf("rejoin as standby: %v", got)
	}
	if names := names(*rejoined); !slices.Equal(names, []string{"b<", "a<b"}) {
		t.Errorf("rejoined tree = %v", names)
	}
}

func TestSignatureIgnoresMovingFigures(t *testing.T) {
	a := view([]api.Instance{primary("a", 1, "0/3"), standby("b", "a", 1, "0/2")}, []api.Standby{row("a", "b", "async")})
	b := view([]api.Instance{primary("a", 1, "0/9"), standby("b", "a", 1, "0/8")}, []api.Standby{row("a", "b", "async")})
	b.Standbys[0].ReplayLagBytes = 77
	if Signature(a) != Signature(b) {
		t.Error("lags and LSNs changed the signature")
	}
	b.Standbys[0].SyncState = "sync"
	if Signature(a) == Signature(b) {
		t.Error("a sync state change kept the signature")
	}
}
