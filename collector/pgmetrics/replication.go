package pgmetrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Replica is one pg_stat_replication row: a standby (or pg_basebackup) as its upstream sees it.
type Replica struct {
	PID              int32
	ApplicationName  string
	ClientAddr       string
	State            string
	SyncState        string
	SlotName         string // the slot its walsender holds, from pg_replication_slots.active_pid
	SentLagBytes     *int64
	WriteLagBytes    *int64
	FlushLagBytes    *int64
	ReplayLagBytes   *int64
	WriteLagSeconds  float64 // NULL in the view (no recent activity) reads as 0
	FlushLagSeconds  float64
	ReplayLagSeconds float64
	ReplyAgeSeconds  *float64
	BackendXminAge   *int64
}

// The columns are the same on 13-18 (reply_time exists since 12). Lags are measured against the
// server's own "now" LSN, which differs between a primary and a cascading standby.
const replicasSQL = `
SELECT r.pid, COALESCE(r.application_name, ''), COALESCE(host(r.client_addr), ''),
       COALESCE(r.state, ''), COALESCE(r.sync_state, ''), COALESCE(s.slot_name::text, ''),
       pg_wal_lsn_diff(%[1]s, r.sent_lsn)::bigint,
       pg_wal_lsn_diff(%[1]s, r.write_lsn)::bigint,
       pg_wal_lsn_diff(%[1]s, r.flush_lsn)::bigint,
       pg_wal_lsn_diff(%[1]s, r.replay_lsn)::bigint,
       COALESCE(EXTRACT(epoch FROM r.write_lag), 0)::float8,
       COALESCE(EXTRACT(epoch FROM r.flush_lag), 0)::float8,
       COALESCE(EXTRACT(epoch FROM r.replay_lag), 0)::float8,
       EXTRACT(epoch FROM now() - r.reply_time)::float8,
       age(r.backend_xmin)::bigint
FROM pg_stat_replication r
LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
ORDER BY r.application_name, r.pid`

// errHiddenStats is what a role without pg_read_all_stats (part of pg_monitor) meets: rows whose
// details are NULL.
var errHiddenStats = errors.New("details hidden: the role lacks pg_monitor (pg_read_all_stats)")

func collectReplicas(ctx context.Context, _ *Target, q querier, st *State) error {
	var out []Replica
	hidden := false
	err := collectRows(ctx, q, fmt.Sprintf(replicasSQL, currentLSN(st.Info)), func(rows pgx.Rows) error {
		var r Replica
		if err := rows.Scan(&r.PID, &r.ApplicationName, &r.ClientAddr, &r.State, &r.SyncState, &r.SlotName,
			&r.SentLagBytes, &r.WriteLagBytes, &r.FlushLagBytes, &r.ReplayLagBytes,
			&r.WriteLagSeconds, &r.FlushLagSeconds, &r.ReplayLagSeconds, &r.ReplyAgeSeconds, &r.BackendXminAge); err != nil {
			return err
		}
		if r.State == "" {
			hidden = true
			return nil
		}
		r.SentLagBytes, r.WriteLagBytes = nonNeg(r.SentLagBytes), nonNeg(r.WriteLagBytes)
		r.FlushLagBytes, r.ReplayLagBytes = nonNeg(r.FlushLagBytes), nonNeg(r.ReplayLagBytes)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return err
	}
	st.Replicas = out
	if hidden {
		return fmt.Errorf("pg_stat_replication: %w", errHiddenStats)
	}
	return nil
}

// IsSync says the standby confirms commits (sync, or part of a quorum).
func (r Replica) IsSync() bool { return r.SyncState == "sync" || r.SyncState == "quorum" }

func emitReplicas(e *emitter, rs []Replica) {
	e.add("pg_replication_connected_standbys", float64(len(rs)))
	for _, r := range rs {
		l := []string{"application_name", r.ApplicationName, "client_addr", r.ClientAddr,
			"state", r.State, "sync_state", r.SyncState, "slot_name", r.SlotName}
		e.add("pg_replication_streaming", boolf(r.State == "streaming"), l...)
		e.add("pg_replication_is_sync", boolf(r.IsSync()), l...)
		addOpt(e, "pg_replication_sent_lag_bytes", r.SentLagBytes, l...)
		addOpt(e, "pg_replication_write_lag_bytes", r.WriteLagBytes, l...)
		addOpt(e, "pg_replication_flush_lag_bytes", r.FlushLagBytes, l...)
		addOpt(e, "pg_replication_replay_lag_bytes", r.ReplayLagBytes, l...)
		e.add("pg_replication_write_lag_seconds", r.WriteLagSeconds, l...)
		e.add("pg_replication_flush_lag_seconds", r.FlushLagSeconds, l...)
		e.add("pg_replication_replay_lag_seconds", r.ReplayLagSeconds, l...)
		addOpt(e, "pg_replication_reply_age_seconds", r.ReplyAgeSeconds, l...)
		addOpt(e, "pg_replication_backend_xmin_age", r.BackendXminAge, l...)
	}
}
