package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	day = 24 * time.Hour
	// partitionLockID serialises partition DDL between API servers (transaction advisory lock).
	partitionLockID    int64 = 0x7067612d70617274
	partitionPrefix          = "samples_p"
	partitionDayFormat       = "20060102"
	// Maintain creates partitions this many days ahead of today.
	partitionsAhead = 2
	// Housekeeping horizons of the small operational tables.
	requestStatsKeep   = 7 * day
	statusHistoryKeep  = day
	expiredTokensGrace = day
	loginFailuresKeep  = day // a counter whose window began longer ago has started again anyway
)

// utcDay is the UTC midnight starting t's day.
func utcDay(t time.Time) time.Time { return t.UTC().Truncate(day) }

func partitionName(d time.Time) string { return partitionPrefix + d.Format(partitionDayFormat) }

// ensurePartitions creates the day partitions of samples that the days need and the cache does not
// know. Each runs in its own short transaction, before (never inside) an ingest transaction, so the
// parent's lock taken by CREATE TABLE … PARTITION OF is held for milliseconds only.
func (s *Store) ensurePartitions(ctx context.Context, days []time.Time) error {
	for _, d := range days {
		if s.partitions.has(d) {
			continue
		}
		name := partitionName(d)
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
			return fmt.Errorf("look up partition: %w", err)
		}
		if !exists {
			if err := s.createPartition(ctx, d); err != nil {
				return err
			}
		}
		s.partitions.add(d)
	}
	return nil
}

func (s *Store) createPartition(ctx context.Context, d time.Time) error {
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF samples FOR VALUES FROM ('%s') TO ('%s')`,
		pgx.Identifier{partitionName(d)}.Sanitize(), d.Format(time.RFC3339), d.Add(day).Format(time.RFC3339))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// IF NOT EXISTS alone still races when two servers create the same table at once.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("create partition %s: %w", partitionName(d), err)
	}
	s.log.Info("created samples partition", "partition", partitionName(d))
	return nil
}

// Maintain creates the partitions for today..+2 days (UTC) and drops every partition whose whole
// day is older than Retention at now; it also trims the small operational tables. Called by the
// server on start and hourly; safe to run on every server at once.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	today := utcDay(now)
	ahead := make([]time.Time, 0, partitionsAhead+1)
	for i := range partitionsAhead + 1 {
		ahead = append(ahead, today.Add(time.Duration(i)*day))
	}
	if err := s.ensurePartitions(ctx, ahead); err != nil {
		return err
	}
	if err := s.dropExpiredPartitions(ctx, now); err != nil {
		return err
	}
	for _, q := range []struct {
		sql    string
		before time.Time
	}{
		{`DELETE FROM request_stats WHERE minute < $1`, now.Add(-requestStatsKeep)},
		{`DELETE FROM collector_status_history WHERE at < $1`, now.Add(-statusHistoryKeep)},
		{`DELETE FROM refresh_tokens WHERE expires_at < $1`, now.Add(-expiredTokensGrace)},
		{`DELETE FROM events WHERE at < $1`, s.retentionCutoff(now)},
		{`DELETE FROM topology_history WHERE at < $1`, s.retentionCutoff(now)},
		{`DELETE FROM samples_1m WHERE bucket < $1`, s.retentionCutoff(now)},
		{`DELETE FROM samples_5m WHERE bucket < $1`, s.retentionCutoff(now)},
		{`DELETE FROM collector_counts_1m WHERE bucket < $1`, s.retentionCutoff(now)},
		{`DELETE FROM samples_1h WHERE bucket < $1`, s.retentionCutoff(now)},
	} {
		if _, err := s.pool.Exec(ctx, q.sql, q.before); err != nil {
			return fmt.Errorf("trim old rows: %w", err)
		}
	}
	return s.trimLoginFailures(ctx, now.Add(-loginFailuresKeep))
}

// retentionCutoff is the oldest sample time kept at now. A partition is dropped once its day ends
// at or before the cutoff, i.e. once every sample it can hold is older than Retention.
func (s *Store) retentionCutoff(now time.Time) time.Time { return now.Add(-s.retention) }

func (s *Store) dropExpiredPartitions(ctx context.Context, now time.Time) error {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'samples'::regclass`)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	cutoff := s.retentionCutoff(now)
	for _, name := range names {
		d, ok := parsePartitionName(name)
		if !ok || d.Add(day).After(cutoff) {
			continue
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
			return err
		})
		if err != nil {
			return fmt.Errorf("drop partition %s: %w", name, err)
		}
		s.partitions.remove(d)
		s.log.Info("dropped samples partition past retention", "partition", name, "retention", s.retention)
	}
	return nil
}

// parsePartitionName returns the day of a partition this store created; other tables attached
// by hand are left alone.
func parsePartitionName(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok {
		return time.Time{}, false
	}
	d, err := time.Parse(partitionDayFormat, rest)
	if err != nil {
		return time.Time{}, false
	}
	return d, true
}
