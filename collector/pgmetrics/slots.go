package pgmetrics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Slot is one pg_replication_slots row. Pointers are nil where the server has no value (a physical
// slot has no confirmed_flush_lsn, a slot that never reserved WAL has no restart_lsn, …) or the
// column does not exist in this version.
type Slot struct {
	Name                   string
	Type                   string // physical | logical
	Plugin                 string
	Database               string
	Active                 bool
	RetainedBytes          *int64 // now - restart_lsn: WAL the slot keeps
	ConfirmedFlushLagBytes *int64 // now - confirmed_flush_lsn (logical)
	XminAge                *int64
	CatalogXminAge         *int64
	WALStatus              string // reserved | extended | unreserved | lost ("" when unknown)
	SafeWALSizeBytes       *int64 // NULL unless max_slot_wal_keep_size is set
	Conflicting            *bool  // 16+, logical slots only
	InactiveSeconds        *float64
}

// Column set per version: 13 has wal_status and safe_wal_size, 16 adds conflicting, 17 adds
// inactive_since (NULL while the slot is in use).
const slotsSQL = `
SELECT slot_name::text, slot_type, COALESCE(plugin::text, ''), COALESCE(database::text, ''), active,
       pg_wal_lsn_diff(%[1]s, restart_lsn)::bigint,
       pg_wal_lsn_diff(%[1]s, confirmed_flush_lsn)::bigint,
       age(xmin)::bigint, age(catalog_xmin)::bigint,
       COALESCE(wal_status, ''), safe_wal_size,
       %[2]s,
       %[3]s
FROM pg_replication_slots
ORDER BY slot_name`

func slotsQuery(i ServerInfo) string {
	conflicting, inactive := "NULL::bool", "NULL::float8"
	if i.VersionNum >= 160000 {
		conflicting = "conflicting"
	}
	if i.VersionNum >= 170000 {
		inactive = "CASE WHEN active THEN 0 ELSE EXTRACT(epoch FROM now() - inactive_since) END::float8"
	}
	return fmt.Sprintf(slotsSQL, currentLSN(i), conflicting, inactive)
}

func collectSlots(ctx context.Context, _ *Target, q querier, st *State) error {
	var out []Slot
	err := collectRows(ctx, q, slotsQuery(st.Info), func(rows pgx.Rows) error {
		var s Slot
		if err := rows.Scan(&s.Name, &s.Type, &s.Plugin, &s.Database, &s.Active,
			&s.RetainedBytes, &s.ConfirmedFlushLagBytes, &s.XminAge, &s.CatalogXminAge,
			&s.WALStatus, &s.SafeWALSizeBytes, &s.Conflicting, &s.InactiveSeconds); err != nil {
			return err
		}
		s.RetainedBytes, s.ConfirmedFlushLagBytes = nonNeg(s.RetainedBytes), nonNeg(s.ConfirmedFlushLagBytes)
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	st.Slots = out
	return nil
}

// walStatusCode is the catalog's numeric encoding of wal_status.
func walStatusCode(status string) (float64, bool) {
	switch status {
	case "reserved":
		return 0, true
	case "extended":
		return 1, true
	case "unreserved":
		return 2, true
	case "lost":
		return 3, true
	}
	return 0, false
}

func (s Slot) labels() []string {
	return []string{"slot_name", s.Name, "slot_type", s.Type, "plugin", s.Plugin, "database", s.Database}
}

func emitSlots(e *emitter, slots []Slot) {
	for _, s := range slots {
		l := s.labels()
		e.add("pg_replication_slot_active", boolf(s.Active), l...)
		addOpt(e, "pg_replication_slot_retained_bytes", s.RetainedBytes, l...)
		addOpt(e, "pg_replication_slot_confirmed_flush_lag_bytes", s.ConfirmedFlushLagBytes, l...)
		addOpt(e, "pg_replication_slot_xmin_age", s.XminAge, l...)
		addOpt(e, "pg_replication_slot_catalog_xmin_age", s.CatalogXminAge, l...)
		addOpt(e, "pg_replication_slot_safe_wal_size_bytes", s.SafeWALSizeBytes, l...)
		if code, ok := walStatusCode(s.WALStatus); ok {
			e.add("pg_replication_slot_wal_status", code, l...)
		}
		if s.Conflicting != nil {
			e.add("pg_replication_slot_conflicting", boolf(*s.Conflicting), l...)
		}
		addOpt(e, "pg_replication_slot_inactive_seconds", s.InactiveSeconds, l...)
	}
}
