package pgmetrics

import (
	"context"
	"fmt"
	"time"
)

// ServerInfo is the instance family: who the server is and where its WAL stands.
type ServerInfo struct {
	VersionNum       int       // server_version_num, e.g. 150010
	InRecovery       bool      // pg_is_in_recovery()
	SystemIdentifier string    // pg_control_system().system_identifier: the cluster a standby shares with its primary
	ClusterName      string    // cluster_name setting
	StartedAt        time.Time // pg_postmaster_start_time()
	Timeline         int64
	WALLSN           string // current (primary) or last replayed (standby) LSN as text
	WALLSNBytes      float64
}

// Role is primary or standby.
func (i ServerInfo) Role() string {
	if i.InRecovery {
		return RoleStandby
	}
	return RolePrimary
}

// Major is the major version (13..18).
func (i ServerInfo) Major() int { return i.VersionNum / 10000 }

const instanceIdentitySQL = `
SELECT current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       (SELECT system_identifier::text FROM pg_control_system()),
       current_setting('cluster_name'),
       pg_postmaster_start_time()`

// A primary's timeline is the one it writes: the first 8 hex digits of its current WAL file name.
// pg_walfile_name() and pg_current_wal_lsn() both refuse to run in recovery, so a standby gets its own
// query: the timeline its receiver streams, else the one of its last restartpoint.
const (
	instanceWALPrimarySQL = `
SELECT pg_current_wal_lsn()::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8,
       ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint`
	instanceWALStandbySQL = `
SELECT COALESCE(pg_last_wal_replay_lsn()::text, ''),
       COALESCE(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8, 0),
       COALESCE((SELECT received_tli FROM pg_stat_wal_receiver WHERE received_tli > 0),
                (SELECT timeline_id FROM pg_control_checkpoint()))::bigint`
)

// collectInstance reads ServerInfo; its failure means the instance is down for this collection.
func collectInstance(ctx context.Context, q querier) (ServerInfo, error) {
	var i ServerInfo
	if err := q.QueryRow(ctx, instanceIdentitySQL).Scan(&i.VersionNum, &i.InRecovery, &i.SystemIdentifier, &i.ClusterName, &i.StartedAt); err != nil {
		return i, fmt.Errorf("identify server: %w", err)
	}
	sql := instanceWALPrimarySQL
	if i.InRecovery {
		sql = instanceWALStandbySQL
	}
	if err := q.QueryRow(ctx, sql).Scan(&i.WALLSN, &i.WALLSNBytes, &i.Timeline); err != nil {
		return i, fmt.Errorf("read WAL position: %w", err)
	}
	return i, nil
}

func (i ServerInfo) emit(e *emitter) {
	e.add("pg_in_recovery", boolf(i.InRecovery))
	e.add("pg_timeline_id", float64(i.Timeline))
	e.add("pg_wal_lsn_bytes", i.WALLSNBytes)
	e.add("pg_server_version_num", float64(i.VersionNum))
	e.add("pg_postmaster_start_time_seconds", float64(i.StartedAt.UnixNano())/1e9)
}
