package fake

import (
	"fmt"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// IDs of the fixture collectors.
const (
	EastID = "c0ffee00-1111-4222-8333-444455556666"
	WestID = "d00dfeed-7777-4888-9999-aaaabbbbcccc"
	LabID  = "0badf00d-dddd-4eee-8fff-000011112222"
)

func ptr[T any](v T) *T { return &v }

// east is a healthy primary with one standby streaming, one catching up and a lost slot.
func east(at time.Time, standby1Lag int64, secs float64) api.CollectorTopology {
	return api.CollectorTopology{
		CollectorID: EastID, CollectorName: "prod-east", ReceivedAt: at.Add(500 * time.Millisecond),
		Snapshot: api.Snapshot{CollectedAt: at, Clusters: []api.Cluster{{
			SystemIdentifier: "7321560123456789012", Timeline: 1,
			Instances: []api.Instance{
				{Name: "east-primary", Address: "10.0.0.1:5432", Up: true, Role: "primary", ServerVersion: 160004, Timeline: 1, WALLSN: "0/5A0001F8"},
				{Name: "east-replica1", Address: "10.0.0.2:5432", Up: true, Role: "standby", ServerVersion: 160004, Timeline: 1, WALLSN: "0/5A000000",
					Receiver: &api.WALReceiver{Connected: true, Status: "streaming", SenderHost: "10.0.0.1", SenderPort: 5432, SlotName: "replica1",
						ReceivedTimeline: 1, LastMsgAgeSeconds: 0.3},
					ReceiveReplayLagBytes: 4096, ReplayDelaySeconds: ptr(0.2), LastReplayAgeSeconds: ptr(0.2)},
			},
			Standbys: []api.Standby{
				{ApplicationName: "replica1", ClientAddr: "10.0.0.2", State: "streaming", SyncState: "async", SlotName: "replica1",
					SentLagBytes: 0, WriteLagBytes: 8192, FlushLagBytes: 8192, ReplayLagBytes: standby1Lag,
					WriteLagSeconds: 0.1, FlushLagSeconds: 0.2, ReplayLagSeconds: secs, ReplyAgeSeconds: 0.5, Instance: "east-replica1"},
				{ApplicationName: "replica2", ClientAddr: "10.0.0.3", State: "catchup", SyncState: "potential", SlotName: "replica2",
					SentLagBytes: 2 << 20, WriteLagBytes: 20 << 20, FlushLagBytes: 30 << 20, ReplayLagBytes: 48 << 20,
					WriteLagSeconds: 12, FlushLagSeconds: 20, ReplayLagSeconds: 42, ReplyAgeSeconds: 1.5},
			},
			Slots: []api.Slot{
				{Name: "replica1", Type: "physical", Active: true, RetainedBytes: standby1Lag, WALStatus: "reserved", SafeWALSizeBytes: ptr(int64(1 << 30))},
				{Name: "replica2", Type: "physical", Active: true, RetainedBytes: 48 << 20, WALStatus: "reserved"},
				{Name: "old_backup", Type: "physical", Active: false, RetainedBytes: 3 << 30, WALStatus: "lost", InactiveSeconds: ptr(86400.0 * 2)},
			},
		}}},
	}
}

// west is a stale collector with a sync standby, a logical slot and a subscription.
func west() api.CollectorTopology {
	at := Now.Add(-5 * time.Minute)
	return api.CollectorTopology{
		CollectorID: WestID, CollectorName: "prod-west", ReceivedAt: at, Stale: true,
		Snapshot: api.Snapshot{CollectedAt: at, Clusters: []api.Cluster{{
			SystemIdentifier: "7400112233445566778", Timeline: 3,
			Instances: []api.Instance{
				{Name: "west-primary", Address: "10.1.0.1:5432", Up: true, Role: "primary", ServerVersion: 170002, Timeline: 3, WALLSN: "3/1F00A0C8"},
				{Name: "west-subscriber", Address: "10.1.0.9:5432", Up: false, Role: "unknown", Error: "connection refused"},
			},
			Standbys: []api.Standby{
				{ApplicationName: "west-sync", ClientAddr: "10.1.0.2", State: "streaming", SyncState: "sync",
					WriteLagBytes: 0, FlushLagBytes: 0, ReplayLagBytes: 512, ReplayLagSeconds: 0.01, ReplyAgeSeconds: 0.2},
			},
			Slots: []api.Slot{
				{Name: "orders_pub", Type: "logical", Plugin: "pgoutput", Database: "shop", Active: true, RetainedBytes: 24 << 10,
					WALStatus: "reserved", ConfirmedFlushLagBytes: ptr(int64(24 << 10)), Conflicting: ptr(false)},
			},
			Subscriptions: []api.Subscription{
				{Instance: "west-subscriber", Name: "orders_sub", Enabled: true, LastMsgAgeSeconds: ptr(1.5), ApplyErrors: 2},
			},
		}}},
	}
}

// Replication is a two-collector fleet: its poll answer and a stream of five pushes of prod-east
// whose replica1 lag grows, so the sparkline has a shape. The poll answer is the first push: whatever
// order poll and stream land in, the view ends on the last push with five history points.
func Replication() *API {
	var events []api.CollectorTopology
	lags := []int64{1 << 20, 3 << 20, 2 << 20, 6 << 20, 7864320}
	for i, lag := range lags {
		events = append(events, east(Now.Add(time.Duration(i-len(lags))*10*time.Second), lag, 0.1*float64(i+1)))
	}
	return &API{
		Topology: api.ReplicationResponse{Collectors: []api.CollectorTopology{events[0], west()}},
		Pushes:   events,
	}
}

// Fleet is n collectors with perStandbys standbys each, for the benchmark.
func Fleet(n, standbys int) api.ReplicationResponse {
	var resp api.ReplicationResponse
	for c := range n {
		cl := api.Cluster{SystemIdentifier: fmt.Sprintf("7%018d", c), Timeline: 1,
			Instances: []api.Instance{{Name: fmt.Sprintf("pg%02d-primary", c), Address: fmt.Sprintf("10.2.%d.1:5432", c), Up: true,
				Role: "primary", ServerVersion: 160004, Timeline: 1, WALLSN: "0/5A0001F8"}}}
		for s := range standbys {
			name := fmt.Sprintf("pg%02d-replica%d", c, s)
			cl.Instances = append(cl.Instances, api.Instance{Name: name, Address: fmt.Sprintf("10.2.%d.%d:5432", c, s+2), Up: true,
				Role: "standby", ServerVersion: 160004, Timeline: 1,
				Receiver: &api.WALReceiver{Connected: true, Status: "streaming", SenderHost: fmt.Sprintf("10.2.%d.1", c), SenderPort: 5432, ReceivedTimeline: 1}})
			cl.Standbys = append(cl.Standbys, api.Standby{ApplicationName: fmt.Sprintf("replica%d", s), ClientAddr: fmt.Sprintf("10.2.%d.%d", c, s+2),
				State: "streaming", SyncState: "async", ReplayLagBytes: int64(s) << 20, ReplayLagSeconds: float64(s), Instance: name})
			cl.Slots = append(cl.Slots, api.Slot{Name: fmt.Sprintf("replica%d", s), Type: "physical", Active: true, RetainedBytes: int64(s) << 20, WALStatus: "reserved"})
		}
		resp.Collectors = append(resp.Collectors, api.CollectorTopology{CollectorID: fmt.Sprintf("col-%03d", c), CollectorName: fmt.Sprintf("collector-%03d", c),
			ReceivedAt: Now.Add(-2 * time.Second), Snapshot: api.Snapshot{CollectedAt: Now.Add(-2 * time.Second), Clusters: []api.Cluster{cl}}})
	}
	return resp
}

// Collectors is three collectors: active, stale with a full buffer, never pushed.
func Collectors() []api.Collector {
	return []api.Collector{
		{ID: EastID, Name: "prod-east", Hostname: "collector1.prod", Status: "active", Version: "3.2.0", RegisteredAt: Now.Add(-72 * time.Hour),
			LastPushAt: ptr(Now.Add(-3 * time.Second)), IntervalSeconds: 15, Instances: 2, BufferUtilization: 0.12, CollectionsTotal: 17280, CollectionFailuresTotal: 3},
		{ID: WestID, Name: "prod-west", Hostname: "collector2.prod", Status: "stale", Version: "3.2.0", RegisteredAt: Now.Add(-72 * time.Hour),
			LastPushAt: ptr(Now.Add(-5 * time.Minute)), IntervalSeconds: 15, Instances: 2, BufferUtilization: 0.83, BufferDroppedTotal: 120,
			CollectionsTotal: 17000, CollectionFailuresTotal: 410},
		{ID: LabID, Name: "lab", Hostname: "lab.local", Status: "never_pushed", RegisteredAt: Now.Add(-10 * time.Minute)},
	}
}

// Alerts is one critical firing, one warning firing and two quiet conditions.
func Alerts() api.AlertsResponse {
	labels := map[string]string{"collector_id": "6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a11", "collector_name": "prod-west"}
	standby := map[string]string{"cluster": "7345012345678901234", "application_name": "standby1", "collector_name": "prod-west"}
	return api.AlertsResponse{EvaluatedAt: Now.Add(-2 * time.Second), Alerts: []api.Alert{
		{Name: "CollectorStale", Severity: "critical", State: "firing", Firing: true, ActiveAt: Now.Add(-4 * time.Minute),
			Since: ptr(Now.Add(-4 * time.Minute)), FiredAt: ptr(Now.Add(-4 * time.Minute)), Value: 30, Threshold: 6,
			Summary: "collector prod-west last pushed 30.0 intervals ago", RunbookURL: "docs/alerts/CollectorStale.md", Labels: labels},
		{Name: "CollectorBufferHigh", Severity: "warning", State: "firing", Firing: true, ActiveAt: Now.Add(-90 * time.Second),
			Since: ptr(Now.Add(-90 * time.Second)), FiredAt: ptr(Now.Add(-90 * time.Second)), Value: 83, Threshold: 70,
			Summary: "collector prod-west buffer 83 % full", RunbookURL: "docs/alerts/CollectorBufferHigh.md", Labels: labels},
		{Name: "ReplicationLagHigh", Severity: "warning", State: "pending", ActiveAt: Now.Add(-20 * time.Second), Value: 41.5, Threshold: 30,
			Summary: "standby standby1 replays 41.5 s behind its primary (threshold 30 s)", RunbookURL: "docs/alerts/ReplicationLagHigh.md", Labels: standby},
		{Name: "ReplicationSlotWALAtRisk", Severity: "warning", State: "resolved", ActiveAt: Now.Add(-20 * time.Minute),
			FiredAt: ptr(Now.Add(-20 * time.Minute)), ResolvedAt: ptr(Now.Add(-3 * time.Minute)), Value: 1, Threshold: 0,
			Summary: "replication slot standby1 wal_status is extended", RunbookURL: "docs/alerts/ReplicationSlotWALAtRisk.md",
			Labels: map[string]string{"cluster": "7345012345678901234", "slot_name": "standby1"}},
	}}
}
