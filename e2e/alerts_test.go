package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/amtest"
)

// e2eRules are the shipped replication rules with `for` cut to seconds, so that the test sees the
// whole path in well under a minute.
const e2eRules = `
[[rule]]
name = "ReplicationLagBytesHigh"
quantity = "replay_lag_bytes"
warning = 1048576
for = "2s"
summary = "standby {{.Labels.application_name}} replays {{printf \"%.0f\" .Value}} bytes behind its primary"
runbook_url = "docs/alerts/ReplicationLagBytesHigh.md"

[[rule]]
name = "StandbyDisconnected"
quantity = "standby_disconnected"
critical = 0
for = "2s"
summary = "standby {{or .Labels.application_name .Labels.instance .Labels.slot_name}} is not streaming from its primary"
runbook_url = "docs/alerts/StandbyDisconnected.md"

[[rule]]
name = "ClusterTwoPrimaries"
quantity = "cluster_primaries"
critical = 1
summary = "cluster {{.Labels.cluster}} has {{printf \"%.0f\" .Value}} primaries"
runbook_url = "docs/alerts/ClusterTwoPrimaries.md"
`

// TestReplicationAlertsReachAlertmanager induces replication faults on a real primary and
// standby and follows each alert to a real Alertmanager's webhook and back: replay paused under
// writes makes the lag alert fire after its `for`, resuming resolves it; a standby whose WAL
// receiver is stopped is disconnected, restarting it resolves that; promoting the standby while
// its primary runs is two primaries in one cluster.
func TestReplicationAlertsReachAlertmanager(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	rules := filepath.Join(t.TempDir(), "alerts.toml")
	if err := os.WriteFile(rules, []byte(e2eRules), 0o600); err != nil {
		t.Fatal(err)
	}
	const every = time.Second
	s := startStack(t, time.Second, false,
		"ALERTMANAGER_URLS="+am.URL, "ALERT_RULES_FILE="+rules, "ALERT_EVALUATION_INTERVAL="+every.String())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	standby := connect(t, ctx, s.env.Vars["STANDBY_URL"], "")
	primary := connect(t, ctx, s.env.Vars["PRIMARY_URL"], "demo")
	alert := func(name, status string, after time.Time) func(amtest.Alert) bool {
		return func(a amtest.Alert) bool {
			return a.Labels["alertname"] == name && a.Status == status && a.ReceivedAt.After(after)
		}
	}

	induced := time.Now()
	if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Exec(ctx, "INSERT INTO orders (payload) SELECT md5(g::text) FROM generate_series(1, 200000) g"); err != nil {
		t.Fatal(err)
	}
	got := am.WaitFor(t, time.Minute, alert("ReplicationLagBytesHigh", "firing", induced))
	t.Logf("lag: paused and written at %s, at the webhook %s later (for 2s, evaluation %s, collector 1s)",
		induced.Format(time.TimeOnly), got.ReceivedAt.Sub(induced).Round(100*time.Millisecond), every)
	if got.Labels["application_name"] != standbyName || got.Labels["severity"] != "warning" ||
		got.Annotations["runbook_url"] != "docs/alerts/ReplicationLagBytesHigh.md" {
		t.Fatalf("delivered %+v", got)
	}
	cleared := time.Now()
	if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	got = am.WaitFor(t, time.Minute, alert("ReplicationLagBytesHigh", "resolved", cleared))
	t.Logf("lag: resumed, resolved at the webhook %s later", got.ReceivedAt.Sub(cleared).Round(100*time.Millisecond))

	// The standby's WAL receiver stopped (primary_conninfo emptied, reloaded): disconnected.
	induced = time.Now()
	for _, q := range []string{"ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()"} {
		if _, err := standby.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got = am.WaitFor(t, time.Minute, alert("StandbyDisconnected", "firing", induced))
	t.Logf("disconnected: at the webhook %s later", got.ReceivedAt.Sub(induced).Round(100*time.Millisecond))
	cleared = time.Now()
	for _, q := range []string{"ALTER SYSTEM RESET primary_conninfo", "SELECT pg_reload_conf()"} {
		if _, err := standby.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got = am.WaitFor(t, time.Minute, alert("StandbyDisconnected", "resolved", cleared))
	t.Logf("disconnected: reconnected, resolved at the webhook %s later", got.ReceivedAt.Sub(cleared).Round(100*time.Millisecond))

	// The standby promoted while its primary still runs: a split brain.
	induced = time.Now()
	if _, err := standby.Exec(ctx, "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	got = am.WaitFor(t, time.Minute, alert("ClusterTwoPrimaries", "firing", induced))
	t.Logf("promoted: ClusterTwoPrimaries at the webhook %s later", got.ReceivedAt.Sub(induced).Round(100*time.Millisecond))
}

// slotRules are the shipped slot rules without `for`.
const slotRules = `
[[rule]]
name = "ReplicationSlotTimeToLoss"
quantity = "slot_time_to_loss_seconds"
below = true
warning = 3600
critical = 600
summary = "replication slot {{.Labels.slot_name}} will lose its WAL in {{printf \"%.0f\" .Value}} s"
runbook_url = "docs/alerts/ReplicationSlotTimeToLoss.md"

[[rule]]
name = "ReplicationSlotWALAtRisk"
quantity = "slot_wal_status"
warning = 0
critical = 1
summary = "replication slot {{.Labels.slot_name}} wal_status {{.Value}}"
runbook_url = "docs/alerts/ReplicationSlotWALAtRisk.md"
`

// TestSlotTimeToLossReachesAlertmanager gives the primary a small max_slot_wal_keep_size and a slot
// nobody consumes, then writes: the slot's time to loss falls under ten minutes (critical) before
// PostgreSQL gives its WAL up, and then its wal_status alert fires.
func TestSlotTimeToLossReachesAlertmanager(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	rules := filepath.Join(t.TempDir(), "alerts.toml")
	if err := os.WriteFile(rules, []byte(slotRules), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, time.Second, false,
		"ALERTMANAGER_URLS="+am.URL, "ALERT_RULES_FILE="+rules, "ALERT_EVALUATION_INTERVAL=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	primary := connect(t, ctx, s.env.Vars["PRIMARY_URL"], "demo")
	for _, q := range []string{
		"ALTER SYSTEM SET max_slot_wal_keep_size = '160MB'", "SELECT pg_reload_conf()",
		"SELECT pg_create_physical_replication_slot('e2e_lagger', true)",
	} {
		if _, err := primary.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Writes, in steady small steps (about a MiB of WAL a second), until the alerts arrive: the
	// slot's 160 MB last a couple of minutes, its time to loss is known after 20 s of samples.
	writing, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	go func() {
		for writing.Err() == nil {
			_, _ = primary.Exec(writing, "INSERT INTO orders (payload) SELECT md5(g::text) FROM generate_series(1, 8000) g")
			time.Sleep(time.Second)
		}
	}()
	start := time.Now()
	critical := am.WaitFor(t, 3*time.Minute, func(a amtest.Alert) bool {
		return a.Labels["alertname"] == "ReplicationSlotTimeToLoss" && a.Labels["severity"] == "critical" &&
			a.Labels["slot_name"] == "e2e_lagger" && a.Status == "firing"
	})
	t.Logf("time to loss critical %s after the writes began: %s", critical.ReceivedAt.Sub(start).Round(time.Second), critical.Annotations["summary"])
	// A checkpoint removes what the slot may no longer keep: the slot is lost.
	checkpoint, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for checkpoint.Err() == nil {
			_, _ = primary.Exec(checkpoint, "CHECKPOINT")
			time.Sleep(2 * time.Second)
		}
	}()
	lost := am.WaitFor(t, 3*time.Minute, func(a amtest.Alert) bool {
		return a.Labels["alertname"] == "ReplicationSlotWALAtRisk" && a.Labels["severity"] == "critical" &&
			a.Labels["slot_name"] == "e2e_lagger" && a.Status == "firing"
	})
	t.Logf("wal_status critical %s after the time-to-loss alert (%s)", lost.ReceivedAt.Sub(critical.ReceivedAt).Round(time.Second), lost.Annotations["summary"])
	if !lost.ReceivedAt.After(critical.ReceivedAt) {
		t.Error("the slot was at risk before its time to loss warned")
	}
}
