package pgmetrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// TestPrimaryStandby collects a primary and its streaming standby (physical slot "standby1") as the
// seed's NOINHERIT pg_monitor role and checks that every value means what it claims.
func TestPrimaryStandby(t *testing.T) {
	archive := serverDir(t)
	p, s := pgtest.StartPrimaryStandby(t,
		pgtest.WithConfig("archive_mode", "on"),
		pgtest.WithConfig("archive_command", "cp %p "+archive+"/%f"),
		pgtest.WithConfig("archive_timeout", "0"))
	createMonitorRole(t, p, false)
	sp := s.Pool(t)
	eventually(t, "monitor role on the standby", func() (bool, string) {
		var n int
		err := sp.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", monitorRole).Scan(&n)
		return err == nil && n == 1, fmt.Sprint(n, err)
	})
	primary := newTarget(t, "primary", dsnAs(t, p, "postgres", monitorRole, ""), 5*time.Second)
	standby := newTarget(t, "standby", dsnAs(t, s, "postgres", monitorRole, ""), 5*time.Second)

	t.Run("primary", func(t *testing.T) {
		st := collectOK(t, primary)
		if st.Info.InRecovery || st.Info.Timeline != 1 || st.Info.SystemIdentifier == "" || st.Info.Major() != p.Major {
			t.Fatalf("info = %+v, want a primary on timeline 1, major %d", st.Info, p.Major)
		}
		if !strings.Contains(primary.RoleNote(), "SET ROLE pg_monitor") {
			t.Errorf("role note = %q, want the NOINHERIT role to SET ROLE pg_monitor", primary.RoleNote())
		}
		r := replicaByName(st.Replicas, pgtest.StandbyName)
		if r == nil {
			t.Fatalf("no pg_stat_replication row for %s in %+v", pgtest.StandbyName, st.Replicas)
		}
		if r.State != "streaming" || r.SyncState != "async" || r.SlotName != pgtest.StandbyName || r.ClientAddr != "127.0.0.1" {
			t.Errorf("replica = %+v", r)
		}
		if r.ReplayLagBytes == nil || r.SentLagBytes == nil || r.ReplyAgeSeconds == nil {
			t.Errorf("replica lags unknown: %+v", r)
		}
		slot := slotByName(st.Slots, pgtest.StandbyName)
		if slot == nil || slot.Type != "physical" || !slot.Active || slot.WALStatus != "reserved" || slot.RetainedBytes == nil {
			t.Errorf("slot = %+v", slot)
		}
		if st.WALDir == nil || st.WALDir.Segments < 1 || st.WALDir.Bytes < 16<<20 {
			t.Errorf("wal dir = %+v, want at least one 16 MiB segment", st.WALDir)
		}
		if p.Major >= 14 && (st.WAL == nil || st.WAL.Bytes <= 0 || st.WAL.Records <= 0) {
			t.Errorf("pg_stat_wal = %+v", st.WAL)
		}
		if len(st.Databases) < 3 {
			t.Errorf("databases = %+v", st.Databases)
		}
		samples := st.Samples()
		for _, want := range []struct {
			name   string
			labels []string
			value  float64
		}{
			{"pg_up", nil, 1},
			{"pg_in_recovery", nil, 0},
			{"pg_timeline_id", nil, 1},
			{"pg_replication_connected_standbys", nil, 1},
			{"pg_replication_streaming", []string{"application_name", pgtest.StandbyName, "slot_name", pgtest.StandbyName, "state", "streaming"}, 1},
			{"pg_replication_is_sync", []string{"application_name", pgtest.StandbyName, "sync_state", "async"}, 0},
			{"pg_replication_slot_active", []string{"slot_name", pgtest.StandbyName, "slot_type", "physical"}, 1},
			{"pg_replication_slot_wal_status", []string{"slot_name", pgtest.StandbyName}, 0},
		} {
			got, ok := sample(samples, want.name, want.labels...)
			if !ok || got != want.value {
				t.Errorf("%s%v = %v (found %v), want %v", want.name, want.labels, got, ok, want.value)
			}
		}
		for _, name := range []string{"pg_wal_lsn_bytes", "pg_replication_replay_lag_bytes", "pg_replication_replay_lag_seconds",
			"pg_replication_reply_age_seconds", "pg_replication_slot_retained_bytes", "pg_wal_directory_bytes", "pg_wal_segments",
			"pg_archiver_archived_total", "pg_archiver_failed_total", "pg_archiver_pending_files",
			"pg_database_xid_age", "pg_database_mxid_age", "pg_database_xid_wraparound_pct"} {
			if _, ok := sample(samples, name); !ok {
				t.Errorf("no %s sample", name)
			}
		}
		for _, name := range []string{"pg_wal_receiver_connected", "pg_standby_replay_paused"} {
			if _, ok := sample(samples, name); ok {
				t.Errorf("a primary emitted standby metric %s", name)
			}
		}
	})

	t.Run("standby", func(t *testing.T) {
		pst := collectOK(t, primary)
		st := collectOK(t, standby)
		if !st.Info.InRecovery || st.Info.SystemIdentifier != pst.Info.SystemIdentifier || st.Info.Timeline != 1 {
			t.Fatalf("standby info = %+v, primary system id %s", st.Info, pst.Info.SystemIdentifier)
		}
		if !st.Receiver.Connected() || st.Receiver.SlotName != pgtest.StandbyName || st.Receiver.ReceivedTimeline != 1 ||
			st.Receiver.LastMsgAgeSeconds == nil || !strings.Contains(st.Receiver.Conninfo, "application_name="+pgtest.StandbyName) {
			t.Errorf("receiver = %+v", st.Receiver)
		}
		if st.Replay == nil || st.Replay.Paused || st.Replay.ReceiveReplayLagBytes == nil {
			t.Fatalf("replay = %+v", st.Replay)
		}
		if len(st.Replicas) != 0 {
			t.Errorf("standby has cascading replicas: %+v", st.Replicas)
		}
		if len(st.Conflicts) == 0 || st.Conflicts[0].ByType["snapshot"] != 0 {
			t.Errorf("conflicts = %+v", st.Conflicts)
		}
		samples := st.Samples()
		for _, name := range []string{"pg_wal_receiver_connected", "pg_wal_receiver_last_msg_age_seconds", "pg_wal_receiver_received_timeline",
			"pg_standby_receive_replay_lag_bytes", "pg_standby_replay_paused", "pg_recovery_conflicts_total", "pg_wal_lsn_bytes"} {
			if _, ok := sample(samples, name); !ok {
				t.Errorf("no %s sample on the standby", name)
			}
		}
		if v, _ := sample(samples, "pg_in_recovery"); v != 1 {
			t.Errorf("pg_in_recovery = %v", v)
		}
	})

	t.Run("paused replay lag grows then shrinks", func(t *testing.T) {
		s.Exec(t, "SELECT pg_wal_replay_pause()")
		p.Exec(t, "CREATE TABLE lag_probe AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 20000) g")
		var paused *State
		eventually(t, "replay lag while paused", func() (bool, string) {
			paused = collectOK(t, standby)
			r := paused.Replay
			return r != nil && r.Paused && r.ReceiveReplayLagBytes != nil && *r.ReceiveReplayLagBytes > 1<<20 &&
				r.DelaySeconds != nil && *r.DelaySeconds > 0, fmt.Sprintf("%+v", r)
		})
		if paused.Replay.LastReplayAgeSeconds == nil || *paused.Replay.LastReplayAgeSeconds < *paused.Replay.DelaySeconds-1 {
			t.Errorf("raw replay age %v vs delay %v", deref(paused.Replay.LastReplayAgeSeconds), deref(paused.Replay.DelaySeconds))
		}
		if v, _ := sample(paused.Samples(), "pg_standby_replay_paused"); v != 1 {
			t.Errorf("pg_standby_replay_paused = %v while paused", v)
		}
		eventually(t, "the primary to see the replay lag", func() (bool, string) {
			r := replicaByName(collectOK(t, primary).Replicas, pgtest.StandbyName)
			return r != nil && r.ReplayLagBytes != nil && *r.ReplayLagBytes > 1<<20, fmt.Sprintf("%+v", r)
		})

		s.Exec(t, "SELECT pg_wal_replay_resume()")
		eventually(t, "replay to catch up", func() (bool, string) {
			r := collectOK(t, standby).Replay
			return r != nil && !r.Paused && r.ReceiveReplayLagBytes != nil && *r.ReceiveReplayLagBytes == 0 &&
				r.DelaySeconds != nil && *r.DelaySeconds == 0, fmt.Sprintf("%+v", r)
		})
		eventually(t, "the primary to see the standby caught up", func() (bool, string) {
			r := replicaByName(collectOK(t, primary).Replicas, pgtest.StandbyName)
			return r != nil && r.ReplayLagBytes != nil && *r.ReplayLagBytes == 0, fmt.Sprintf("%+v", r)
		})
		// Caught up on an idle primary: the delay is zero, the raw age is not.
		st := collectOK(t, standby)
		if st.Replay.LastReplayAgeSeconds == nil || *st.Replay.LastReplayAgeSeconds <= 0 {
			t.Errorf("raw last replay age = %v, want > 0 (never zeroed)", deref(st.Replay.LastReplayAgeSeconds))
		}
	})

	t.Run("inactive slot retains WAL", func(t *testing.T) {
		p.Exec(t, "SELECT pg_create_physical_replication_slot('idle_slot', true)")
		before := slotByName(collectOK(t, primary).Slots, "idle_slot")
		if before == nil || before.Active || before.RetainedBytes == nil {
			t.Fatalf("idle slot = %+v", before)
		}
		p.Exec(t, "CREATE TABLE slot_probe AS SELECT g FROM generate_series(1, 50000) g")
		after := slotByName(collectOK(t, primary).Slots, "idle_slot")
		if *after.RetainedBytes <= *before.RetainedBytes {
			t.Errorf("retained bytes %d -> %d, want growth", *before.RetainedBytes, *after.RetainedBytes)
		}
		if p.Major >= 17 {
			if after.InactiveSeconds == nil || *after.InactiveSeconds < 0 {
				t.Errorf("inactive seconds = %v on %d", deref(after.InactiveSeconds), p.Major)
			}
		} else if after.InactiveSeconds != nil {
			t.Errorf("inactive seconds on %d: %v", p.Major, *after.InactiveSeconds)
		}
		if v, ok := sample(collectOK(t, primary).Samples(), "pg_replication_slot_active", "slot_name", "idle_slot"); !ok || v != 0 {
			t.Errorf("pg_replication_slot_active{idle_slot} = %v, %v", v, ok)
		}
		p.Exec(t, "SELECT pg_drop_replication_slot('idle_slot')")
	})

	t.Run("archiving works then fails", func(t *testing.T) {
		p.Exec(t, "CREATE TABLE archive_probe(i int); INSERT INTO archive_probe VALUES (1)")
		p.Exec(t, "SELECT pg_switch_wal()")
		eventually(t, "a segment archived", func() (bool, string) {
			a := collectOK(t, primary).Archiver
			return a != nil && a.Archived > 0 && a.LastArchivedAgeSeconds != nil, fmt.Sprintf("%+v", a)
		})
		p.Exec(t, "ALTER SYSTEM SET archive_command = 'false'")
		p.Exec(t, "SELECT pg_reload_conf()")
		failedBefore := collectOK(t, primary).Archiver.Failed
		p.Exec(t, "INSERT INTO archive_probe VALUES (2)")
		p.Exec(t, "SELECT pg_switch_wal()")
		eventually(t, "archiving to fail", func() (bool, string) {
			a := collectOK(t, primary).Archiver
			return a != nil && a.Failed > failedBefore && a.PendingFiles >= 1, fmt.Sprintf("%+v", a)
		})
		p.Exec(t, "ALTER SYSTEM RESET archive_command")
		p.Exec(t, "SELECT pg_reload_conf()")
	})

	t.Run("terminated session reconnects", func(t *testing.T) {
		collectOK(t, primary)
		p.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", applicationName)
		st := collectOK(t, primary)
		if !st.Up {
			t.Fatalf("down after pg_terminate_backend: %v", st.Err)
		}
	})

	t.Run("replication families skipped when not due", func(t *testing.T) {
		fresh := collectOK(t, standby)
		st := standby.Collect(context.Background(), false)
		if st.ReplicationFresh || st.Receiver != fresh.Receiver {
			t.Errorf("replication state not carried over: fresh=%v receiver=%p want %p", st.ReplicationFresh, st.Receiver, fresh.Receiver)
		}
		if _, ok := sample(st.Samples(), "pg_wal_receiver_connected"); ok {
			t.Error("samples emitted for a family that did not run")
		}
	})
}
