package dashboards_test

import (
	"regexp"
	"slices"
	"testing"
)

// catalog is the metric catalog (docs/collector.md, metric catalog): the names collectors push and the dashboards
// may query. Names are contracts (added to, never renamed), so a dashboard naming anything else
// shows nothing.
var catalog = []string{
	// Instance.
	"pg_up", "pg_in_recovery", "pg_timeline_id", "pg_wal_lsn_bytes",
	// Primary, per standby.
	"pg_replication_connected_standbys", "pg_replication_streaming", "pg_replication_is_sync",
	"pg_replication_sent_lag_bytes", "pg_replication_write_lag_bytes", "pg_replication_flush_lag_bytes",
	"pg_replication_replay_lag_bytes", "pg_replication_write_lag_seconds", "pg_replication_flush_lag_seconds",
	"pg_replication_replay_lag_seconds", "pg_replication_reply_age_seconds", "pg_replication_backend_xmin_age",
	// Slots.
	"pg_replication_slot_active", "pg_replication_slot_retained_bytes",
	"pg_replication_slot_confirmed_flush_lag_bytes", "pg_replication_slot_xmin_age",
	"pg_replication_slot_catalog_xmin_age", "pg_replication_slot_safe_wal_size_bytes",
	"pg_replication_slot_wal_status", "pg_replication_slot_conflicting", "pg_replication_slot_inactive_seconds",
	"pg_replication_slot_spill_bytes_total", "pg_replication_slot_spill_txns_total",
	"pg_replication_slot_stream_bytes_total", "pg_replication_slot_stream_txns_total",
	"pg_replication_slot_total_bytes_total",
	// Standby.
	"pg_wal_receiver_connected", "pg_wal_receiver_last_msg_age_seconds", "pg_wal_receiver_received_timeline",
	"pg_standby_receive_replay_lag_bytes", "pg_standby_replay_delay_seconds", "pg_standby_last_replay_age_seconds",
	"pg_standby_replay_paused", "pg_recovery_conflicts_total",
	// WAL and archiving.
	"pg_wal_bytes_total", "pg_wal_records_total", "pg_wal_fpi_total", "pg_wal_buffers_full_total",
	"pg_wal_directory_bytes", "pg_wal_segments", "pg_archiver_archived_total", "pg_archiver_failed_total",
	"pg_archiver_last_archived_age_seconds", "pg_archiver_pending_files",
	// Logical.
	"pg_subscription_enabled", "pg_subscription_last_msg_age_seconds", "pg_subscription_apply_errors_total",
	"pg_subscription_sync_errors_total", "pg_subscription_rel_not_ready",
	// Wraparound.
	"pg_database_xid_age", "pg_database_mxid_age", "pg_database_xid_wraparound_pct",
	// Collector self.
	"pganalytics_collector_cycle_seconds", "pganalytics_collector_collection_failures_total",
	"pganalytics_collector_buffer_utilization_ratio", "pganalytics_collector_buffer_dropped_total",
}

// metricLiteral finds metric names in SQL: string literals shaped like a catalog name.
var metricLiteral = regexp.MustCompile(`'((?:pg|pganalytics)_[a-z0-9_]+)'`)

// TestMetricNames checks that the dashboards query only catalog names and, together, all of them.
func TestMetricNames(t *testing.T) {
	used := map[string]bool{}
	for _, d := range loadDashboards(t) {
		for _, q := range d.queries() {
			for _, m := range metricLiteral.FindAllStringSubmatch(q.sql, -1) {
				used[m[1]] = true
				if !slices.Contains(catalog, m[1]) {
					t.Errorf("%s %s: %q is not in the metric catalog (docs/collector.md)", d.file, q.where, m[1])
				}
			}
		}
	}
	for _, name := range catalog {
		if !used[name] {
			t.Errorf("catalog metric %s is on no dashboard", name)
		}
	}
}
