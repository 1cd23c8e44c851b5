package pgmetrics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Conflicts is one database's pg_stat_database_conflicts row on a standby: queries cancelled because
// replay needed what they held.
type Conflicts struct {
	Datname string
	ByType  map[string]int64 // conflict_type -> count
}

// conflictTypes lists the confl_* columns per version: 16 adds confl_active_logicalslot (logical
// slots on standbys).
func conflictTypes(i ServerInfo) []string {
	types := []string{"tablespace", "lock", "snapshot", "bufferpin", "deadlock"}
	if i.VersionNum >= 160000 {
		types = append(types, "active_logicalslot")
	}
	return types
}

func conflictsQuery(types []string) string {
	cols := ""
	for _, t := range types {
		cols += ", confl_" + t
	}
	return fmt.Sprintf("SELECT datname::text%s FROM pg_stat_database_conflicts WHERE datname IS NOT NULL ORDER BY datname", cols)
}

func collectConflicts(ctx context.Context, _ *Target, q querier, st *State) error {
	types := conflictTypes(st.Info)
	var out []Conflicts
	err := collectRows(ctx, q, conflictsQuery(types), func(rows pgx.Rows) error {
		c := Conflicts{ByType: make(map[string]int64, len(types))}
		counts := make([]int64, len(types))
		dest := []any{&c.Datname}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, t := range types {
			c.ByType[t] = counts[i]
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return err
	}
	st.Conflicts = out
	return nil
}

func emitConflicts(e *emitter, cs []Conflicts) {
	for _, c := range cs {
		for t, v := range c.ByType {
			e.add("pg_recovery_conflicts_total", float64(v), "datname", c.Datname, "conflict_type", t)
		}
	}
}
