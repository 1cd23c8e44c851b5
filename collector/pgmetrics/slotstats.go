package pgmetrics

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SlotStats is one pg_stat_replication_slots row (14+): logical decoding work per slot.
type SlotStats struct {
	Slot        Slot // name, type, plugin and database only
	SpillTxns   int64
	SpillBytes  int64
	StreamTxns  int64
	StreamBytes int64
	TotalTxns   int64
	TotalBytes  int64
}

// pg_stat_replication_slots exists since 14 with the same columns through 18; 13 has no such view
// (the family is skipped there).
const slotStatsSQL = `
SELECT s.slot_name::text, COALESCE(r.slot_type, 'logical'), COALESCE(r.plugin::text, ''), COALESCE(r.database::text, ''),
       s.spill_txns, s.spill_bytes, s.stream_txns, s.stream_bytes, s.total_txns, s.total_bytes
FROM pg_stat_replication_slots s
LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name
ORDER BY s.slot_name`

func collectSlotStats(ctx context.Context, _ *Target, q querier, st *State) error {
	var out []SlotStats
	err := collectRows(ctx, q, slotStatsSQL, func(rows pgx.Rows) error {
		var s SlotStats
		if err := rows.Scan(&s.Slot.Name, &s.Slot.Type, &s.Slot.Plugin, &s.Slot.Database,
			&s.SpillTxns, &s.SpillBytes, &s.StreamTxns, &s.StreamBytes, &s.TotalTxns, &s.TotalBytes); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	st.SlotStats = out
	return nil
}

func emitSlotStats(e *emitter, stats []SlotStats) {
	for _, s := range stats {
		l := s.Slot.labels()
		e.add("pg_replication_slot_spill_bytes_total", float64(s.SpillBytes), l...)
		e.add("pg_replication_slot_spill_txns_total", float64(s.SpillTxns), l...)
		e.add("pg_replication_slot_stream_bytes_total", float64(s.StreamBytes), l...)
		e.add("pg_replication_slot_stream_txns_total", float64(s.StreamTxns), l...)
		e.add("pg_replication_slot_total_bytes_total", float64(s.TotalBytes), l...)
		e.add("pg_replication_slot_total_txns_total", float64(s.TotalTxns), l...)
	}
}
