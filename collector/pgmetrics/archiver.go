package pgmetrics

import (
	"context"
)

// Archiver is pg_stat_archiver plus the segments still waiting to be archived.
type Archiver struct {
	Archived               int64
	Failed                 int64
	LastArchivedAgeSeconds *float64 // nil when nothing was ever archived
	PendingFiles           int64    // .ready files in pg_wal/archive_status
}

// Same on 13-18; pg_ls_archive_statusdir() (12+) is granted to pg_monitor.
const archiverSQL = `
SELECT archived_count, failed_count,
       EXTRACT(epoch FROM now() - last_archived_time)::float8,
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
FROM pg_stat_archiver`

func collectArchiver(ctx context.Context, _ *Target, q querier, st *State) error {
	var a Archiver
	if err := q.QueryRow(ctx, archiverSQL).Scan(&a.Archived, &a.Failed, &a.LastArchivedAgeSeconds, &a.PendingFiles); err != nil {
		return err
	}
	st.Archiver = &a
	return nil
}

func emitArchiver(e *emitter, a *Archiver) {
	if a == nil {
		return
	}
	e.add("pg_archiver_archived_total", float64(a.Archived))
	e.add("pg_archiver_failed_total", float64(a.Failed))
	addOpt(e, "pg_archiver_last_archived_age_seconds", a.LastArchivedAgeSeconds)
	e.add("pg_archiver_pending_files", float64(a.PendingFiles))
}
