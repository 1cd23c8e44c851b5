package pgcluster

import (
	"context"
	"fmt"
	"path/filepath"
)

// Promote ends recovery on a standby (pg_ctl promote) and waits until it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	cmd, err := c.command(ctx, "pg_ctl", "promote", "-w", "-D", c.DataDir)
	if err == nil {
		err = run(cmd)
	}
	if err != nil {
		return fmt.Errorf("promote %s: %w", c.Name, err)
	}
	return nil
}

// Exec runs one statement as the superuser on database db.
func (c *Cluster) Exec(ctx context.Context, db, sql string, args ...any) error {
	if err := c.exec(ctx, db, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}

// RejoinAsStandby turns c, a former primary, into a streaming standby of upstream: it stops c,
// rewinds its data directory to upstream's timeline with pg_rewind (c needs wal_log_hints or data
// checksums, and full_page_writes), points it at upstream through a new slot named after c, starts
// it and waits until upstream reports it streaming.
func (c *Cluster) RejoinAsStandby(ctx context.Context, upstream *Cluster) error {
	if err := c.rejoin(ctx, upstream); err != nil {
		return fmt.Errorf("rejoin %s as a standby of %s: %w", c.Name, upstream.Name, err)
	}
	return nil
}

func (c *Cluster) rejoin(ctx context.Context, upstream *Cluster) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	cmd, err := c.command(ctx, "pg_rewind", "--target-pgdata="+c.DataDir, "--source-server="+upstream.DSN("postgres"))
	if err != nil {
		return err
	}
	if err := run(cmd); err != nil {
		return err
	}
	if err := upstream.exec(ctx, "postgres", "SELECT pg_create_physical_replication_slot($1, true)", c.Name); err != nil {
		return fmt.Errorf("create slot: %w", err)
	}
	err = c.appendSettings(map[string]string{
		"port":                    fmt.Sprint(c.Port),
		"unix_socket_directories": c.SocketDir,
		"primary_conninfo":        primaryConninfo(upstream, c.Name),
		"primary_slot_name":       c.Name,
	})
	if err != nil {
		return err
	}
	if err := writeServerFile(filepath.Join(c.DataDir, "standby.signal"), nil); err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	return waitStreaming(ctx, upstream, c.Name)
}
