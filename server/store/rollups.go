package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Rollup maintenance.
const (
	// RollupSettle is how far behind now the minute rollups stay: a push's samples are in by then.
	RollupSettle = 2 * time.Minute
	// rollupChunk is the span one statement aggregates, so that a backfill proceeds in short
	// transactions; rollupChunksPerRound bounds one MaintainRollups call.
	rollupChunk          = time.Hour
	rollupChunksPerRound = 24
	// RollupsLockID is the advisory lock of the server maintaining the rollups (one at a time).
	RollupsLockID int64 = 0x7067612d726f6c6c
	// maxDirtyHoursPerPush bounds what one late push marks (a spool of days marks its first hours;
	// the rest are in hours that were not rolled up yet, or are marked by later pushes).
	maxDirtyHoursPerPush = 48
)

// RollupProgress is what one MaintainRollups call did.
type RollupProgress struct {
	MinutesUntil, FivesUntil, HoursUntil time.Time // each level is complete before these
	Recomputed                           int       // dirty (collector, hour) pairs recomputed
	Behind                               bool      // more to do (a backfill): call again
}

// minuteAggregate aggregates raw samples of [$1, $2) (of collector $3 when set) into samples_1m.
const minuteAggregate = `
	INSERT INTO samples_1m (collector_id, series_id, bucket, min, max, sum, count, last, last_at)
	SELECT collector_id, series_id, date_trunc('minute', "timestamp"), min(value), max(value), sum(value), count(*),
	       (array_agg(value ORDER BY "timestamp" DESC))[1], max("timestamp")
	  FROM samples
	 WHERE "timestamp" >= $1 AND "timestamp" < $2 AND ($3::uuid IS NULL OR collector_id = $3)
	 GROUP BY 1, 2, 3
	ON CONFLICT (collector_id, series_id, bucket) DO UPDATE SET
	       min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum, count = EXCLUDED.count,
	       last = EXCLUDED.last, last_at = EXCLUDED.last_at`

// collectorCountAggregate counts the samples of each collector per minute from the minute
// rollups of [$1, $2), into collector_counts_1m.
const collectorCountAggregate = `
	INSERT INTO collector_counts_1m (collector_id, bucket, samples)
	SELECT collector_id, bucket, sum(count) FROM samples_1m
	 WHERE bucket >= $1 AND bucket < $2 AND ($3::uuid IS NULL OR collector_id = $3)
	 GROUP BY 1, 2
	ON CONFLICT (collector_id, bucket) DO UPDATE SET samples = EXCLUDED.samples`

// fromMinutes completes an aggregate of the minute rollups of [$1, $2) (of collector $3 when
// set) into a coarser level, after its "INSERT INTO level (…) SELECT collector_id, series_id,
// bucket".
const fromMinutes = `, min(min), max(max), sum(sum), sum(count),
	       (array_agg(last ORDER BY last_at DESC))[1], max(last_at)
	  FROM samples_1m
	 WHERE bucket >= $1 AND bucket < $2 AND ($3::uuid IS NULL OR collector_id = $3)
	 GROUP BY 1, 2, 3
	ON CONFLICT (collector_id, series_id, bucket) DO UPDATE SET
	       min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum, count = EXCLUDED.count,
	       last = EXCLUDED.last, last_at = EXCLUDED.last_at`

// fiveAggregate and hourAggregate roll the minutes up into samples_5m (buckets on the Unix epoch's
// 5-minute grid, whatever the session's time zone) and samples_1h.
const (
	fiveAggregate = `
	INSERT INTO samples_5m (collector_id, series_id, bucket, min, max, sum, count, last, last_at)
	SELECT collector_id, series_id, to_timestamp(floor(extract(epoch FROM bucket) / 300) * 300)` + fromMinutes
	hourAggregate = `
	INSERT INTO samples_1h (collector_id, series_id, bucket, min, max, sum, count, last, last_at)
	SELECT collector_id, series_id, date_trunc('hour', bucket)` + fromMinutes
)

// MaintainRollups brings the rollups up to now - RollupSettle: the hours late samples touched are
// recomputed whole, then the minute rollups go on from where they stopped (from the oldest sample
// on the first call: the backfill of existing data), then the 5 minutes and the hours the minutes
// completed. At most rollupChunksPerRound hours of each level per call; Behind says when more is
// left.
func (s *Store) MaintainRollups(ctx context.Context, now time.Time) (RollupProgress, error) {
	var p RollupProgress
	var err error
	if p.MinutesUntil, err = s.rollupStart(ctx, "1m", `SELECT min("timestamp") FROM samples`, time.Minute); err != nil {
		return p, err
	}
	if p.Recomputed, err = s.recomputeDirty(ctx, p.MinutesUntil); err != nil {
		return p, err
	}
	target := now.Add(-RollupSettle).Truncate(time.Minute)
	if p.MinutesUntil, p.Behind, err = s.rollForward(ctx, "1m", p.MinutesUntil, target, minuteAggregate, collectorCountAggregate); err != nil {
		return p, err
	}
	// The coarser levels start from the minutes (on the first call, once these are backfilled).
	if p.FivesUntil, err = s.rollupStart(ctx, "5m", `SELECT min(bucket) FROM samples_1m`, 5*time.Minute); err != nil {
		return p, err
	}
	if p.HoursUntil, err = s.rollupStart(ctx, "1h", `SELECT min(bucket) FROM samples_1m`, time.Hour); err != nil {
		return p, err
	}
	var behind bool
	if p.FivesUntil, behind, err = s.rollForward(ctx, "5m", p.FivesUntil, p.MinutesUntil.Truncate(5*time.Minute), fiveAggregate); err != nil {
		return p, err
	}
	p.Behind = p.Behind || behind
	p.HoursUntil, behind, err = s.rollForward(ctx, "1h", p.HoursUntil, p.MinutesUntil.Truncate(time.Hour), hourAggregate)
	p.Behind = p.Behind || behind
	return p, err
}

// rollupStart is where a level stands: its recorded progress, else the start of its oldest input
// (truncated to the level's step), else now's step (nothing to roll up yet).
func (s *Store) rollupStart(ctx context.Context, level, oldest string, step time.Duration) (time.Time, error) {
	var done time.Time
	err := s.pool.QueryRow(ctx, `SELECT done_until FROM rollup_state WHERE level = $1`, level).Scan(&done)
	switch {
	case err == nil:
		return done, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, fmt.Errorf("rollup state: %w", err)
	}
	var first pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, oldest).Scan(&first); err != nil {
		return time.Time{}, fmt.Errorf("rollup start: %w", err)
	}
	if !first.Valid {
		return time.Now().UTC().Truncate(step), nil
	}
	return first.Time.UTC().Truncate(step), nil
}

// rollForward aggregates [from, to) chunk by chunk (each of aggregates, in order), recording the
// progress with each chunk.
func (s *Store) rollForward(ctx context.Context, level string, from, to time.Time, aggregates ...string) (time.Time, bool, error) {
	for range rollupChunksPerRound {
		if !from.Before(to) {
			return from, false, nil
		}
		end := earliest(from.Add(rollupChunk), to)
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			for _, aggregate := range aggregates {
				if _, err := tx.Exec(ctx, aggregate, from, end, nil); err != nil {
					return fmt.Errorf("roll up %s: %w", level, err)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO rollup_state (level, done_until) VALUES ($1, $2)
				ON CONFLICT (level) DO UPDATE SET done_until = EXCLUDED.done_until`, level, end)
			return err
		})
		if err != nil {
			return from, false, err
		}
		from = end
	}
	return from, from.Before(to), nil
}

// recomputeDirty recomputes, whole, each (collector, hour) late samples touched that the minute
// rollups had already passed: its minutes, its 5 minutes and the hour, as far as each level goes.
func (s *Store) recomputeDirty(ctx context.Context, minutesUntil time.Time) (int, error) {
	var fivesUntil, hoursUntil time.Time // zero: the level has not started, nothing of it to redo
	err := s.pool.QueryRow(ctx, `
		SELECT COALESCE(max(done_until) FILTER (WHERE level = '5m'), '0001-01-01Z'),
		       COALESCE(max(done_until) FILTER (WHERE level = '1h'), '0001-01-01Z')
		  FROM rollup_state`).Scan(&fivesUntil, &hoursUntil)
	if err != nil {
		return 0, fmt.Errorf("rollup state: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT collector_id, hour FROM rollup_dirty ORDER BY hour LIMIT 200`)
	if err != nil {
		return 0, fmt.Errorf("dirty rollups: %w", err)
	}
	type dirty struct {
		collector pgtype.UUID
		hour      time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dirty, error) {
		var d dirty
		err := r.Scan(&d.collector, &d.hour)
		return d, err
	})
	if err != nil {
		return 0, fmt.Errorf("dirty rollups: %w", err)
	}
	for _, d := range list {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if d.hour.Before(minutesUntil) {
				end := earliest(d.hour.Add(time.Hour), minutesUntil)
				if _, err := tx.Exec(ctx, `DELETE FROM samples_1m WHERE collector_id = $1 AND bucket >= $2 AND bucket < $3`,
					d.collector, d.hour, end); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, minuteAggregate, d.hour, end, d.collector); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, collectorCountAggregate, d.hour, end, d.collector); err != nil {
					return err
				}
				if fives := earliest(end, fivesUntil); d.hour.Before(fives) {
					if _, err := tx.Exec(ctx, `DELETE FROM samples_5m WHERE collector_id = $1 AND bucket >= $2 AND bucket < $3`,
						d.collector, d.hour, fives); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, fiveAggregate, d.hour, fives, d.collector); err != nil {
						return err
					}
				}
				if end.Equal(d.hour.Add(time.Hour)) && d.hour.Before(hoursUntil) {
					if _, err := tx.Exec(ctx, `DELETE FROM samples_1h WHERE collector_id = $1 AND bucket = $2`, d.collector, d.hour); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, hourAggregate, d.hour, end, d.collector); err != nil {
						return err
					}
				}
			}
			_, err := tx.Exec(ctx, `DELETE FROM rollup_dirty WHERE collector_id = $1 AND hour = $2`, d.collector, d.hour)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("recompute rollups: %w", err)
		}
	}
	return len(list), nil
}

// lateHours are the distinct hours of rows older than now - RollupSettle, at most
// maxDirtyHoursPerPush.
func lateHours(rows []sampleRow, now time.Time) []time.Time {
	cutoff := now.Add(-RollupSettle)
	var hours []time.Time
	for _, r := range rows {
		if !r.ts.Before(cutoff) {
			continue
		}
		if h := r.ts.UTC().Truncate(time.Hour); !slices.ContainsFunc(hours, h.Equal) {
			if hours = append(hours, h); len(hours) == maxDirtyHoursPerPush {
				break
			}
		}
	}
	return hours
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
