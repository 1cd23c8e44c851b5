package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/collector/pgmetrics"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
)

func ptr[T any](v T) *T { return &v }

func primaryState(name, sysid string, replicas ...pgmetrics.Replica) *pgmetrics.State {
	return &pgmetrics.State{
		Name: name, Address: name + ":5432", Up: true,
		Info:     pgmetrics.ServerInfo{VersionNum: 150010, SystemIdentifier: sysid, Timeline: 2, WALLSN: "0/3000000"},
		Replicas: replicas,
		Slots:    []pgmetrics.Slot{{Name: "slot_b", Type: "physical", Active: true, RetainedBytes: ptr(int64(100))}},
	}
}

func standbyState(name, sysid, slot, conninfo, clusterName string, streaming bool) *pgmetrics.State {
	status := ""
	if streaming {
		status = "streaming"
	}
	return &pgmetrics.State{
		Name: name, Address: name + ":5432", Up: true,
		Info:     pgmetrics.ServerInfo{VersionNum: 150010, InRecovery: true, SystemIdentifier: sysid, Timeline: 2, ClusterName: clusterName},
		Receiver: &pgmetrics.Receiver{Status: status, SlotName: slot, Conninfo: conninfo, ReceivedTimeline: 2, LastMsgAgeSeconds: ptr(0.5)},
		Replay:   &pgmetrics.Replay{ReceiveReplayLagBytes: ptr(int64(0)), DelaySeconds: ptr(0.0), LastReplayAgeSeconds: ptr(42.0)},
	}
}

func TestBuildJoinsStandbysToPrimary(t *testing.T) {
	p := primaryState("db1", "100",
		pgmetrics.Replica{ApplicationName: "walreceiver", State: "streaming", SyncState: "async", SlotName: "slot_b", ReplayLagBytes: ptr(int64(7))},
		pgmetrics.Replica{ApplicationName: "db3app", State: "streaming", SyncState: "sync"},
		pgmetrics.Replica{ApplicationName: "unmonitored", State: "catchup", SyncState: "async"},
	)
	byslot := standbyState("db2", "100", "slot_b", "user=rep host=db1 application_name=walreceiver", "", true)
	byapp := standbyState("db3", "100", "", "user=rep host=db1 port=5432 application_name=db3app", "", true)
	bycluster := standbyState("db4", "100", "", "", "db4cluster", false)
	other := primaryState("other", "200")
	down := &pgmetrics.State{Name: "gone", Address: "gone:5432", Err: errors.New("connection refused")}

	snap := Build(time.Unix(100, 0), []*pgmetrics.State{byslot, p, byapp, other, bycluster, down})
	if len(snap.Clusters) != 3 {
		t.Fatalf("clusters = %d, want 3: %+v", len(snap.Clusters), snap.Clusters)
	}
	c := snap.Clusters[0]
	if c.SystemIdentifier != "100" || c.Timeline != 2 {
		t.Errorf("cluster = %s tl %d", c.SystemIdentifier, c.Timeline)
	}
	names := []string{}
	for _, in := range c.Instances {
		names = append(names, in.Name+"/"+in.Role)
	}
	if want := []string{"db1/primary", "db2/standby", "db3/standby", "db4/standby"}; !equal(names, want) {
		t.Errorf("instances = %v, want %v", names, want)
	}
	got := map[string]string{}
	for _, s := range c.Standbys {
		got[s.ApplicationName+"|"+s.State] = s.Instance
	}
	want := map[string]string{
		"walreceiver|streaming":   "db2", // by slot
		"db3app|streaming":        "db3", // by primary_conninfo application_name
		"unmonitored|catchup":     "",
		"db4cluster|disconnected": "db4", // not streaming, not listed by the primary
	}
	if len(got) != len(want) {
		t.Errorf("standbys = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("standby %s -> %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if c.Standbys[0].ReplayLagBytes != 7 || c.Standbys[0].SyncState != "async" {
		t.Errorf("first standby = %+v", c.Standbys[0])
	}
	if len(c.Slots) != 1 || c.Slots[0].RetainedBytes != 100 {
		t.Errorf("slots = %+v", c.Slots)
	}
	db2 := c.Instances[1]
	if db2.Receiver == nil || !db2.Receiver.Connected || db2.LastReplayAgeSeconds == nil || *db2.LastReplayAgeSeconds != 42 {
		t.Errorf("standby instance = %+v", db2)
	}
	if g := snap.Clusters[2]; g.SystemIdentifier != "" || len(g.Instances) != 1 || g.Instances[0].Up || g.Instances[0].Error != "connection refused" {
		t.Errorf("unreached instance cluster = %+v", g)
	}
}

func TestBuildAmbiguousApplicationNameIsNotMatched(t *testing.T) {
	p := primaryState("db1", "1",
		pgmetrics.Replica{ApplicationName: "walreceiver", State: "streaming"},
		pgmetrics.Replica{ApplicationName: "walreceiver", State: "streaming"},
	)
	s := standbyState("db2", "1", "", "host=db1 fallback_application_name=walreceiver", "", true)
	c := Build(time.Now(), []*pgmetrics.State{p, s}).Clusters[0]
	for _, sb := range c.Standbys {
		if sb.Instance != "" {
			t.Errorf("ambiguous name matched %+v", sb)
		}
	}
	if len(c.Standbys) != 2 {
		t.Errorf("a streaming standby matching no row must not be listed as disconnected: %+v", c.Standbys)
	}
}

func TestBuildDownStandbyIsDisconnected(t *testing.T) {
	p := primaryState("db1", "1")
	down := &pgmetrics.State{Name: "db2", Err: errors.New("timeout"), Info: pgmetrics.ServerInfo{SystemIdentifier: "1", InRecovery: true}}
	c := Build(time.Now(), []*pgmetrics.State{p, down}).Clusters[0]
	if len(c.Standbys) != 1 || c.Standbys[0].State != topology.StateDisconnected || c.Standbys[0].Instance != "db2" {
		t.Errorf("standbys = %+v", c.Standbys)
	}
	if in := c.Instances[1]; in.Up || in.Role != pgmetrics.RoleUnknown || in.Error != "timeout" {
		t.Errorf("down instance = %+v", in)
	}
}

func TestBuildWithoutPrimary(t *testing.T) {
	s := standbyState("db2", "1", "slot", "", "", true)
	c := Build(time.Now(), []*pgmetrics.State{s}).Clusters[0]
	if len(c.Standbys) != 0 || len(c.Slots) != 0 || len(c.Instances) != 1 || c.Timeline != 2 {
		t.Errorf("cluster without a monitored primary = %+v", c)
	}
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

// TestBuildReplayDelayUnknownIsNotZero: a standby that has replayed nothing since it started cannot
// tell its replay delay; the snapshot must say "unknown" (nil), never a reassuring 0.
func TestBuildReplayDelayUnknownIsNotZero(t *testing.T) {
	tests := []struct {
		name  string
		delay *float64
	}{
		{"caught up", ptr(0.0)},
		{"behind", ptr(12.5)},
		{"unknown", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := standbyState("db2", "100", "slot_b", "", "", true)
			s.Replay.DelaySeconds = tt.delay
			snap := Build(time.Unix(100, 0), []*pgmetrics.State{primaryState("db1", "100"), s})
			got := snap.Clusters[0].Instances[1].ReplayDelaySeconds
			if (got == nil) != (tt.delay == nil) || (got != nil && *got != *tt.delay) {
				t.Errorf("replay delay = %v, want %v", got, tt.delay)
			}
		})
	}
}

// TestBuildKeepsWithinTheAPIBounds: a snapshot the API would refuse would hold the metrics back
// with it, so the collector cuts what is over the bounds: a long error on a rune boundary, lists
// at their maxima.
func TestBuildKeepsWithinTheAPIBounds(t *testing.T) {
	p := primaryState("db1", "1")
	for i := range api.MaxSnapshotSlots + 10 {
		p.Slots = append(p.Slots, pgmetrics.Slot{Name: fmt.Sprintf("s%d", i), Type: "physical"})
	}
	down := &pgmetrics.State{Name: "db2", Err: errors.New(strings.Repeat("é", api.MaxInstanceErrorBytes)),
		Info: pgmetrics.ServerInfo{SystemIdentifier: "2"}}
	sn := Build(time.Now(), []*pgmetrics.State{p, down})
	if n := len(sn.Clusters[0].Slots); n != api.MaxSnapshotSlots {
		t.Errorf("%d slots", n)
	}
	e := sn.Clusters[1].Instances[0].Error
	if len(e) > api.MaxInstanceErrorBytes || len(e) < api.MaxInstanceErrorBytes-1 || !utf8.ValidString(e) {
		t.Errorf("error of %d bytes (valid UTF-8: %v)", len(e), utf8.ValidString(e))
	}
}

// TestBuildPlacesCascadingStandbyUnderItsUpstream: primary → db2 → db3; db3's row is db2's, so db3
// goes under db2 with db2's view of its lag, and its lag to the primary comes from the LSNs.
func TestBuildPlacesCascadingStandbyUnderItsUpstream(t *testing.T) {
	p := primaryState("db1", "1", pgmetrics.Replica{ApplicationName: "db2", State: "streaming", SyncState: "async", ReplayLagBytes: ptr(int64(5))})
	p.Info.WALLSN = "0/3000100"
	mid := standbyState("db2", "1", "", "host=db1 application_name=db2", "", true)
	mid.Info.WALLSN = "0/3000000"
	mid.Replicas = []pgmetrics.Replica{{ApplicationName: "db3", State: "streaming", SyncState: "async", ReplayLagBytes: ptr(int64(9))}}
	leaf := standbyState("db3", "1", "", "host=db2 application_name=db3", "", true)
	leaf.Info.WALLSN = "0/2FFFF00"
	c := Build(time.Now(), []*pgmetrics.State{leaf, mid, p}).Clusters[0]
	var order []string
	for _, in := range c.Instances {
		order = append(order, in.Name+"<"+in.Upstream)
	}
	if want := []string{"db1<", "db2<db1", "db3<db2"}; !equal(order, want) {
		t.Fatalf("tree = %v, want %v", order, want)
	}
	db3 := c.Instances[2]
	if db3.UpstreamLagBytes == nil || *db3.UpstreamLagBytes != 9 || db3.PrimaryLagBytes == nil || *db3.PrimaryLagBytes != 0x200 {
		t.Errorf("db3 lags: upstream %v primary %v", db3.UpstreamLagBytes, db3.PrimaryLagBytes)
	}
	if d := topology.Depths(&c); d["db3"] != 2 || d["db2"] != 1 || d["db1"] != 0 {
		t.Errorf("depths = %v", d)
	}
	for _, sb := range c.Standbys {
		if sb.Instance != sb.ApplicationName {
			t.Errorf("row %s of %s joined to %q", sb.ApplicationName, sb.Upstream, sb.Instance)
		}
	}
}

// TestBuildSplitBrainKeepsBothPrimariesViews: the old primary still running after a promotion keeps
// its slots and standbys in the snapshot, and the cluster says split.
func TestBuildSplitBrainKeepsBothPrimariesViews(t *testing.T) {
	old := primaryState("db1", "1", pgmetrics.Replica{ApplicationName: "app1", State: "streaming"})
	old.Info.Timeline = 1
	promoted := primaryState("db2", "1", pgmetrics.Replica{ApplicationName: "app2", State: "streaming"})
	promoted.Slots = []pgmetrics.Slot{{Name: "slot_c", Type: "physical", Active: true}}
	c := Build(time.Now(), []*pgmetrics.State{old, promoted}).Clusters[0]
	if !c.Split || c.Timeline != 2 {
		t.Errorf("split %v timeline %d", c.Split, c.Timeline)
	}
	rows := map[string]string{}
	for _, sb := range c.Standbys {
		rows[sb.ApplicationName] = sb.Upstream
	}
	slots := map[string]string{}
	for _, sl := range c.Slots {
		slots[sl.Instance+"/"+sl.Name] = sl.Type
	}
	if rows["app1"] != "db1" || rows["app2"] != "db2" || len(slots) != 2 || slots["db1/slot_b"] == "" || slots["db2/slot_c"] == "" {
		t.Errorf("rows %v slots %v", rows, slots)
	}
}

func TestBuildClusterName(t *testing.T) {
	p, s := primaryState("db1", "1"), standbyState("db2", "1", "", "", "", true)
	s.Cluster = "orders"
	if c := Build(time.Now(), []*pgmetrics.State{p, s}).Clusters[0]; c.Name != "orders" {
		t.Errorf("name = %q", c.Name)
	}
	if c := Build(time.Now(), []*pgmetrics.State{primaryState("db1", "1")}).Clusters[0]; c.Name != "" {
		t.Errorf("unset name = %q (the server names it)", c.Name)
	}
}
