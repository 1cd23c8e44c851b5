// Package pgmetrics reads one PostgreSQL instance's replication, WAL and database state with
// version-aware SQL (PostgreSQL 13-18), as a role that only has pg_monitor, on primaries and standbys.
//
// Each metric family lives in its own file: the typed rows it reads, the SQL for each server version
// next to the code that picks it, and the samples it emits. Collection fills a State; Samples turns a
// State into catalog metrics and package snapshot turns States into the topology.
package pgmetrics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/collector/patroni"
)

// State is everything one collection of one instance found. Slices are nil when their family did not
// run (not due, not applicable to the role or version, or failed: see Failures).
type State struct {
	Name        string // [[postgres]] name
	Cluster     string // [[postgres]] cluster, "" when not set
	Address     string // host:port, the "instance" label
	CollectedAt time.Time
	Duration    time.Duration
	Up          bool
	Err         error // why the instance is down (Up false)
	Failures    []FamilyError

	Info ServerInfo

	// ReplicationFresh says the replication families ran in this collection; when false, the
	// replication fields hold the previous collection's values (kept for the snapshot) and no
	// samples are emitted for them.
	ReplicationFresh bool
	Replicas         []Replica
	Slots            []Slot
	SlotStats        []SlotStats
	Receiver         *Receiver
	Replay           *Replay
	Conflicts        []Conflicts
	Subscriptions    []Subscription

	// Patroni is what the member's Patroni REST API answered (nil with PatroniErr set when it did
	// not, nil without an error when no patroni_url is configured).
	Patroni    *patroni.Report
	PatroniErr error

	WAL       *WALStats
	WALDir    *WALDir
	Archiver  *Archiver
	Databases []Database
}

// FamilyError is one family that failed while the instance itself answered.
type FamilyError struct {
	Family string
	Err    error
}

func (e FamilyError) Error() string { return e.Family + ": " + e.Err.Error() }

// Role names used in the snapshot.
const (
	RolePrimary = "primary"
	RoleStandby = "standby"
	RoleUnknown = "unknown"
)

// querier is what the families need from a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// family is one metric family: which collections it belongs to and how it reads its rows into st.
type family struct {
	name        string
	replication bool // switched and paced by [pg_replication]
	applies     func(ServerInfo) bool
	collect     func(ctx context.Context, t *Target, q querier, st *State) error
}

func always(ServerInfo) bool        { return true }
func standbyOnly(i ServerInfo) bool { return i.InRecovery }
func sinceVersion(v int) func(ServerInfo) bool {
	return func(i ServerInfo) bool { return i.VersionNum >= v }
}

// families lists every family after the instance query, in collection order.
func families() []family {
	return []family{
		{name: "replication", replication: true, applies: always, collect: collectReplicas},
		{name: "slots", replication: true, applies: always, collect: collectSlots},
		{name: "slot_stats", replication: true, applies: sinceVersion(140000), collect: collectSlotStats},
		{name: "wal_receiver", replication: true, applies: standbyOnly, collect: collectReceiver},
		{name: "standby_replay", replication: true, applies: standbyOnly, collect: collectReplay},
		{name: "recovery_conflicts", replication: true, applies: standbyOnly, collect: collectConflicts},
		{name: "subscriptions", replication: true, applies: always, collect: collectSubscriptions},
		{name: "wal", applies: sinceVersion(140000), collect: collectWALStats},
		{name: "wal_dir", applies: always, collect: collectWALDir},
		{name: "archiver", applies: always, collect: collectArchiver},
		{name: "wraparound", applies: always, collect: collectDatabases},
	}
}

// currentLSN is the SQL expression for "where WAL is now" on this server: pg_current_wal_lsn() on a
// primary; on a standby, which may not call it, the furthest of received and replayed WAL.
func currentLSN(i ServerInfo) string {
	if i.InRecovery {
		return "GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
	}
	return "pg_current_wal_lsn()"
}

// collectRows runs sql and scans every row with scan.
func collectRows(ctx context.Context, q querier, sql string, scan func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	return rows.Err()
}
