package pgmetrics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Privilege is one check of what the collector's role may read.
type Privilege struct {
	What string
	OK   bool
	Fix  string // the statement that fixes it, when not OK
}

// privilegeSQL runs on the collector's own session (after any SET ROLE pg_monitor), so it sees
// exactly the privileges the families run with.
const privilegeSQL = `
SELECT session_user::text, r.rolsuper,
       pg_has_role('pg_monitor', 'USAGE'),
       pg_has_role('pg_read_all_stats', 'USAGE'),
       pg_has_role('pg_read_all_settings', 'USAGE'),
       has_function_privilege('pg_ls_waldir()', 'EXECUTE'),
       has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE')
FROM pg_roles r WHERE r.rolname = current_user`

// CheckPrivileges connects if needed and reports the privileges the families rely on.
func (t *Target) CheckPrivileges(ctx context.Context) ([]Privilege, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	var user string
	var super, monitor, stats, settings, waldir, archdir bool
	if err := conn.QueryRow(ctx, privilegeSQL).Scan(&user, &super, &monitor, &stats, &settings, &waldir, &archdir); err != nil {
		return nil, fmt.Errorf("check privileges: %w", err)
	}
	grant := fmt.Sprintf("GRANT pg_monitor TO %s;", pgx.Identifier{user}.Sanitize())
	checks := []Privilege{
		{What: "pg_monitor (or superuser): " + t.roleNote, OK: super || monitor, Fix: grant},
		{What: "pg_read_all_stats: pg_stat_replication and pg_stat_wal_receiver details", OK: super || stats, Fix: grant},
		{What: "pg_read_all_settings: primary_conninfo and archive settings", OK: super || settings, Fix: grant},
		{What: "EXECUTE pg_ls_waldir(): pg_wal_directory_bytes, pg_wal_segments", OK: waldir, Fix: grant},
		{What: "EXECUTE pg_ls_archive_statusdir(): pg_archiver_pending_files", OK: archdir, Fix: grant},
	}
	return checks, nil
}
