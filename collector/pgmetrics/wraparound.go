package pgmetrics

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Database is one pg_database row's distance to transaction ID wraparound.
type Database struct {
	Name    string
	XIDAge  int64
	MXIDAge int64
}

// xidWraparoundLimit is how far datfrozenxid may fall behind before the server stops assigning
// XIDs (2^31).
const xidWraparoundLimit = 1 << 31

// WraparoundPct is XIDAge as a percentage of the 2^31 limit.
func (d Database) WraparoundPct() float64 { return 100 * float64(d.XIDAge) / xidWraparoundLimit }

// Same on 13-18 (mxid_age since 9.5).
const databasesSQL = `
SELECT datname::text, age(datfrozenxid)::bigint, mxid_age(datminmxid)::bigint
FROM pg_database ORDER BY datname`

func collectDatabases(ctx context.Context, _ *Target, q querier, st *State) error {
	var out []Database
	err := collectRows(ctx, q, databasesSQL, func(rows pgx.Rows) error {
		var d Database
		if err := rows.Scan(&d.Name, &d.XIDAge, &d.MXIDAge); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return err
	}
	st.Databases = out
	return nil
}

func emitDatabases(e *emitter, dbs []Database) {
	for _, d := range dbs {
		e.add("pg_database_xid_age", float64(d.XIDAge), "datname", d.Name)
		e.add("pg_database_mxid_age", float64(d.MXIDAge), "datname", d.Name)
		e.add("pg_database_xid_wraparound_pct", d.WraparoundPct(), "datname", d.Name)
	}
}
