package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/internal/api"
)

// TopologyChannel is the LISTEN/NOTIFY channel Ingest notifies with the collector id on every push.
const TopologyChannel = "pganalytics_topology"

// maxFutureSkew bounds how far ahead of the server's clock a sample may be: a collector with a
// wrong clock must not make the store create partitions for arbitrary future days.
const maxFutureSkew = day

// QueryMetrics limits.
const (
	DefaultMetricsLimit = 1000
	MaxMetricsLimit     = 10000
)

// MetricsQuery selects samples. Empty fields do not filter; Since and Until are inclusive.
// Limit defaults to 1000 and is capped at 10000.
type MetricsQuery struct {
	CollectorID, Name string
	Since, Until      time.Time
	Limit             int
	Step              time.Duration // 0: raw samples; time.Minute, 5 minutes or time.Hour: the rollups
}

type sampleRow struct {
	ts     time.Time
	value  float64
	series int64
}

// IngestResult is what a push stored.
type IngestResult struct {
	Accepted int
	// SeriesIDs holds the series id of each of the push's Metrics, in order; 0 for a sample that
	// was not stored.
	SeriesIDs []int64

	byIDKeys []string // the series keys of the stored ByID samples
	byIDAt   []int    // their indexes in ByID
}

// ByIDSamples returns the stored samples of req.ByID (req being the push that gave r) with their
// series' names and labels, as if they had been pushed by name: what a remote-write receiver needs.
func (r *IngestResult) ByIDSamples(req *api.PushRequest) []api.Sample {
	out := make([]api.Sample, len(r.byIDAt))
	for j, i := range r.byIDAt {
		out[j].Name, out[j].Labels = parseSeriesKey(r.byIDKeys[j])
		out[j].Value = req.ByID.Values[i]
		out[j].Timestamp = byIDTime(req, i)
	}
	return out
}

// StoredByID is how many of the stored samples were pushed by series id.
func (r *IngestResult) StoredByID() int { return len(r.byIDAt) }

func byIDTime(req *api.PushRequest, i int) time.Time {
	if len(req.ByID.TimestampsMS) == 0 {
		return req.CollectedAt
	}
	return time.UnixMilli(req.ByID.TimestampsMS[i])
}

// Ingest stores a push from an active collector: its samples (validated by the caller), its status
// and its snapshot, in one transaction, and notifies TopologyChannel. It returns how many samples
// were stored; ErrNotFound if the collector is unknown or deregistered; ErrUnknownSeries if a
// sample of req.ByID names a series that is not the collector's (then nothing is stored).
//
// Samples with a zero Timestamp take req.CollectedAt (or the server's time if that is zero too).
// Timestamps are accepted from Retention ago up to one day ahead: a spooled batch from days ago is
// stored, its day partition created on demand; samples older than Retention are not stored and not
// counted as accepted, since retention would drop them at the next Maintain (and creating their
// partition would resurrect a dropped day), nor are samples more than a day in the future.
//
// A snapshot replaces the stored one only if it is not older, so a spooled batch delivered late
// never hides the current topology.
func (s *Store) Ingest(ctx context.Context, collectorID string, req *api.PushRequest) (accepted int, err error) {
	res, err := s.IngestFor(ctx, collectorID, "", req)
	return res.Accepted, err
}

// IngestFor is Ingest for the holder of the collector token tokenID (its JWT id): the token is
// checked in the push's own statement, so that a deregistered collector's push is refused
// (ErrNotFound) without a round trip of its own. An empty tokenID checks no token.
func (s *Store) IngestFor(ctx context.Context, collectorID, tokenID string, req *api.PushRequest) (IngestResult, error) {
	cid, err := parseID(collectorID)
	if err != nil {
		return IngestResult{}, err
	}
	if req == nil {
		return IngestResult{}, fmt.Errorf("%w: empty push", ErrInvalid)
	}
	if by := req.ByID; by != nil && (len(by.Values) != len(by.SeriesIDs) ||
		len(by.TimestampsMS) != 0 && len(by.TimestampsMS) != len(by.SeriesIDs)) {
		return IngestResult{}, fmt.Errorf("%w: by_id columns of different lengths", ErrInvalid)
	}
	token := pgtype.Text{String: tokenID, Valid: tokenID != ""}
	res, err := s.ingest(ctx, cid, token, req)
	var retry errPartitionGone
	if errors.As(err, &retry) {
		// Another server dropped (or an operator removed) a partition this server had cached.
		s.partitions.clear()
		if res, err = s.ingest(ctx, cid, token, req); errors.As(err, &retry) {
			err = fmt.Errorf("ingest: %w", err)
		}
	}
	return res, err
}

type errPartitionGone struct{ err error }

func (e errPartitionGone) Error() string { return e.err.Error() }
func (e errPartitionGone) Unwrap() error { return e.err }

func (s *Store) ingest(ctx context.Context, cid pgtype.UUID, token pgtype.Text, req *api.PushRequest) (IngestResult, error) {
	now := time.Now()
	collectedAt := req.CollectedAt
	if collectedAt.IsZero() {
		collectedAt = now
	}
	oldest, newest := s.retentionCutoff(now), now.Add(maxFutureSkew)

	collector := cid.String()
	var (
		n        = req.Samples()
		rows     = make([]sampleRow, 0, n)
		keys     = make([]string, 0, len(req.Metrics))
		samples  = make([]*api.Sample, 0, len(req.Metrics))
		named    = make([]int, 0, len(req.Metrics)) // the index in req.Metrics of each named row
		days     []time.Time
		lastDay  time.Time
		keyBuf   strings.Builder
		rejected int
	)
	// keep tells whether a sample at ts is stored, and notes its day partition.
	keep := func(ts time.Time) bool {
		if ts.Before(oldest) || ts.After(newest) {
			rejected++
			return false
		}
		if d := utcDay(ts); !d.Equal(lastDay) {
			lastDay = d
			if !slices.ContainsFunc(days, d.Equal) {
				days = append(days, d)
			}
		}
		return true
	}
	for i := range req.Metrics {
		m := &req.Metrics[i]
		ts := m.Timestamp
		if ts.IsZero() {
			ts = collectedAt
		}
		if !keep(ts) {
			continue
		}
		rows = append(rows, sampleRow{ts: ts, value: m.Value})
		keys = append(keys, seriesKey(&keyBuf, collector, m.Name, m.Labels))
		samples = append(samples, m)
		named = append(named, i)
	}
	res := IngestResult{SeriesIDs: make([]int64, len(req.Metrics))}
	if by := req.ByID; by.Len() > 0 {
		ids := make([]int64, 0, by.Len())
		for i, id := range by.SeriesIDs {
			ts := collectedAt
			if len(by.TimestampsMS) > 0 {
				ts = time.UnixMilli(by.TimestampsMS[i])
			}
			if !keep(ts) {
				continue
			}
			rows = append(rows, sampleRow{ts: ts, value: by.Values[i], series: id})
			ids = append(ids, id)
			res.byIDAt = append(res.byIDAt, i)
		}
		var err error
		if res.byIDKeys, err = s.seriesKeysOf(ctx, cid, ids); err != nil {
			return IngestResult{}, err
		}
	}
	if rejected > 0 {
		s.log.Warn("samples outside the accepted time range not stored",
			"collector_id", collector, "rejected", rejected, "oldest_accepted", oldest, "newest_accepted", newest)
	}
	if err := s.ensurePartitions(ctx, days); err != nil {
		return IngestResult{}, err
	}

	ids := make([]int64, len(keys))
	missing := s.series.lookup(keys, ids)
	settle := func() IngestResult {
		for j, i := range named {
			res.SeriesIDs[i] = ids[j]
		}
		res.Accepted = len(rows)
		return res
	}
	if len(missing) == 0 && len(rows) > 0 {
		// The steady state, every series known: one statement, one round trip, one commit.
		for i := range ids {
			rows[i].series = ids[i]
		}
		if err := recordPush(ctx, s.pool, cid, token, collectedAt, req, rows, lateHours(rows, now)); err != nil {
			var gone errPartitionGone
			if errors.Is(err, ErrNotFound) || errors.As(err, &gone) {
				return IngestResult{}, err
			}
			return IngestResult{}, fmt.Errorf("ingest: %w", err)
		}
		return settle(), nil
	}

	var created map[string]int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// First, so that the collector's row lock serialises its concurrent pushes: their series
		// upserts then never deadlock (other collectors' series never conflict).
		if err := recordPush(ctx, tx, cid, token, collectedAt, req, nil, lateHours(rows, now)); err != nil {
			return err
		}
		if len(missing) > 0 {
			var err error
			if created, err = upsertSeries(ctx, tx, cid, keys, samples, missing, ids); err != nil {
				return err
			}
		}
		for i := range ids {
			rows[i].series = ids[i]
		}
		if len(rows) == 0 {
			return nil
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"samples"},
			[]string{"timestamp", "collector_id", "series_id", "value"},
			&sampleSource{rows: rows, collector: cid, next: -1})
		if err != nil {
			if pgCode(err) == codeCheckViolation { // no partition of relation "samples" found for row
				return errPartitionGone{err}
			}
			return fmt.Errorf("copy samples: %w", err)
		}
		return nil
	})
	if err != nil {
		var gone errPartitionGone
		if errors.Is(err, ErrNotFound) || errors.As(err, &gone) {
			return IngestResult{}, err
		}
		return IngestResult{}, fmt.Errorf("ingest: %w", err)
	}
	// Only ids of committed series may be cached.
	if len(created) > 0 {
		s.series.add(created)
	}
	return settle(), nil
}

// seriesKeysOf returns the keys of series ids, which must all be the collector's: from the cache,
// or else from the series table (another server created them, or the cache let them go), then
// cached. ErrUnknownSeries names how many are not the collector's.
func (s *Store) seriesKeysOf(ctx context.Context, cid pgtype.UUID, ids []int64) ([]string, error) {
	collector := cid.String()
	keys := make([]string, len(ids))
	missing := s.series.keysOf(seriesOwner(collector), ids, keys)
	if len(missing) == 0 {
		return keys, nil
	}
	want := make([]int64, 0, len(missing))
	for _, i := range missing {
		want = append(want, ids[i])
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, name, labels FROM series WHERE collector_id = $1 AND id = ANY($2::bigint[])`, cid, want)
	if err != nil {
		return nil, fmt.Errorf("look up series: %w", err)
	}
	found := make(map[string]int64, len(want))
	byID := make(map[int64]string, len(want))
	var keyBuf strings.Builder
	for rows.Next() {
		var (
			id     int64
			name   string
			labels map[string]string
		)
		if err := rows.Scan(&id, &name, &labels); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up series: %w", err)
		}
		k := seriesKey(&keyBuf, collector, name, labels)
		found[k], byID[id] = id, k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up series: %w", err)
	}
	unknown := 0
	for _, i := range missing {
		k, ok := byID[ids[i]]
		if !ok {
			unknown++
			continue
		}
		keys[i] = k
	}
	if len(found) > 0 {
		s.series.add(found)
	}
	if unknown > 0 {
		return nil, fmt.Errorf("%w: %d of %d series ids are not this collector's", ErrUnknownSeries, unknown, len(ids))
	}
	return keys, nil
}

// recordPush records the push on the collector's row, appends its counters to the status history,
// upserts the snapshot, notifies listeners and, given rows (their series known), inserts the
// samples, all in one statement: one round trip. ErrNotFound if the collector is not active (then
// nothing is written).
//
// late are the hours of samples older than RollupSettle: marked for the rollups to recompute.
func recordPush(ctx context.Context, q querier, cid pgtype.UUID, token pgtype.Text, collectedAt time.Time, req *api.PushRequest,
	rows []sampleRow, late []time.Time) error {
	var (
		version, hostname              pgtype.Text
		instances                      pgtype.Int4
		interval, bufferUtil           pgtype.Float8
		dropped, failures, collections pgtype.Int8
		snapshot                       []byte
		snapshotAt                     = collectedAt
		notified                       bool
	)
	if st := req.Status; st != nil {
		version = pgtype.Text{String: st.Version, Valid: true}
		hostname = pgtype.Text{String: st.Hostname, Valid: st.Hostname != ""}
		instances = pgtype.Int4{Int32: int32(min(max(st.Instances, 0), 1<<31-1)), Valid: true}
		interval = pgtype.Float8{Float64: st.IntervalSeconds, Valid: true}
		bufferUtil = pgtype.Float8{Float64: st.BufferUtilization, Valid: true}
		dropped = pgtype.Int8{Int64: st.BufferDroppedTotal, Valid: true}
		failures = pgtype.Int8{Int64: st.CollectionFailuresTotal, Valid: true}
		collections = pgtype.Int8{Int64: st.CollectionsTotal, Valid: true}
	}
	if req.Snapshot != nil {
		var err error
		if snapshot, err = json.Marshal(req.Snapshot); err != nil {
			return fmt.Errorf("encode snapshot: %w", err)
		}
		if !req.Snapshot.CollectedAt.IsZero() {
			snapshotAt = req.Snapshot.CollectedAt
		}
	}
	// The samples as columns; the timestamps only when they differ (a collector's cycle shares
	// one), else that one as $17: fewer bytes to encode, send and decode.
	ts, sids, values := make([]time.Time, len(rows)), make([]int64, len(rows)), make([]float64, len(rows))
	var shared pgtype.Timestamptz
	for i, r := range rows {
		ts[i], sids[i], values[i] = r.ts, r.series, r.value
	}
	if len(rows) > 0 && !slices.ContainsFunc(rows, func(r sampleRow) bool { return !r.ts.Equal(rows[0].ts) }) {
		ts, shared = ts[:0], pgtype.Timestamptz{Time: rows[0].ts, Valid: true}
	}
	err := q.QueryRow(ctx, `
		WITH c AS (
		    UPDATE collectors SET
		           last_push_at = now(),
		           version = COALESCE($2::text, version),
		           hostname = COALESCE($3::text, hostname),
		           instances = COALESCE($4::integer, instances),
		           interval_seconds = COALESCE($5::float8, interval_seconds),
		           buffer_utilization = COALESCE($6::float8, buffer_utilization),
		           buffer_dropped_total = COALESCE($7::bigint, buffer_dropped_total),
		           collection_failures_total = COALESCE($8::bigint, collection_failures_total),
		           collections_total = COALESCE($9::bigint, collections_total)
		     WHERE id = $1 AND deleted_at IS NULL AND ($15::text IS NULL OR token_id = $15::text)
		    RETURNING id
		), history AS (
		    INSERT INTO collector_status_history (collector_id, at, collections_total, collection_failures_total)
		    SELECT id, now(), $9::bigint, $8::bigint FROM c WHERE $9::bigint IS NOT NULL
		    ON CONFLICT (collector_id, at) DO NOTHING
		), snapshot AS (
		    INSERT INTO collector_snapshots (collector_id, received_at, collected_at, snapshot)
		    SELECT id, now(), $10::timestamptz, $11::jsonb FROM c WHERE $11::jsonb IS NOT NULL
		    ON CONFLICT (collector_id) DO UPDATE SET
		           received_at = EXCLUDED.received_at,
		           collected_at = EXCLUDED.collected_at,
		           snapshot = EXCLUDED.snapshot
		     WHERE collector_snapshots.collected_at <= EXCLUDED.collected_at
		), samples AS (
		    INSERT INTO samples ("timestamp", collector_id, series_id, value)
		    SELECT coalesce(t, $17::timestamptz), $1, sid, v
		      FROM unnest($13::bigint[], $14::float8[], $12::timestamptz[]) AS u(sid, v, t)
		     WHERE EXISTS (SELECT 1 FROM c)
		), late AS (
		    INSERT INTO rollup_dirty (collector_id, hour)
		    SELECT $1, h FROM unnest($16::timestamptz[]) AS l(h) WHERE EXISTS (SELECT 1 FROM c)
		    ON CONFLICT DO NOTHING
		)
		SELECT pg_notify('`+TopologyChannel+`', id::text) IS NOT NULL FROM c`,
		cid, version, hostname, instances, interval, bufferUtil, dropped, failures, collections,
		snapshotAt, snapshot, ts, sids, values, token, late, shared).Scan(&notified)
	if err != nil {
		if pgCode(err) == codeCheckViolation { // no partition of relation "samples" found for row
			return errPartitionGone{err}
		}
		return notFound(err, "record push")
	}
	return nil
}

// upsertSeries resolves the series at the missing indexes, creating those that do not exist, fills
// their ids and returns the new cache entries.
func upsertSeries(ctx context.Context, tx pgx.Tx, cid pgtype.UUID, keys []string, samples []*api.Sample,
	missing []int, ids []int64) (map[string]int64, error) {
	// Deduplicate (ON CONFLICT DO UPDATE may not touch a row twice) and keep the first index per key.
	first := make(map[string]int, len(missing))
	var names, labels []string
	for _, i := range missing {
		if _, ok := first[keys[i]]; ok {
			continue
		}
		first[keys[i]] = i
		l := samples[i].Labels
		if l == nil {
			l = map[string]string{}
		}
		b, err := json.Marshal(l)
		if err != nil {
			return nil, fmt.Errorf("encode labels: %w", err)
		}
		names = append(names, samples[i].Name)
		labels = append(labels, string(b))
	}
	// DO UPDATE (not DO NOTHING) so that RETURNING also yields series that already exist, including
	// ones another transaction committed after this statement's snapshot was taken.
	rows, err := tx.Query(ctx, `
		INSERT INTO series (collector_id, name, labels)
		SELECT $1, n, l::jsonb FROM unnest($2::text[], $3::text[]) AS u(n, l)
		ON CONFLICT (collector_id, name, md5(labels::text)) DO UPDATE SET name = EXCLUDED.name
		RETURNING id, name, labels`, cid, names, labels)
	if err != nil {
		return nil, fmt.Errorf("upsert series: %w", err)
	}
	created := make(map[string]int64, len(first))
	collector := cid.String()
	var keyBuf strings.Builder
	for rows.Next() {
		var (
			id   int64
			name string
			lbl  map[string]string
		)
		if err := rows.Scan(&id, &name, &lbl); err != nil {
			rows.Close()
			return nil, fmt.Errorf("upsert series: %w", err)
		}
		created[seriesKey(&keyBuf, collector, name, lbl)] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("upsert series: %w", err)
	}
	for _, i := range missing {
		id, ok := created[keys[i]]
		if !ok {
			return nil, fmt.Errorf("upsert series: no id returned for %q", samples[i].Name)
		}
		ids[i] = id
	}
	return created, nil
}

// sampleSource feeds CopyFrom without building a [][]any of the whole batch.
type sampleSource struct {
	rows      []sampleRow
	collector pgtype.UUID
	next      int
	vals      [4]any
}

func (s *sampleSource) Next() bool {
	s.next++
	return s.next < len(s.rows)
}

func (s *sampleSource) Values() ([]any, error) {
	r := &s.rows[s.next]
	s.vals = [4]any{r.ts, s.collector, r.series, r.value}
	return s.vals[:], nil
}

func (s *sampleSource) Err() error { return nil }

// QueryMetrics returns the newest samples matching q, newest first. ErrNotFound for a malformed
// collector id.
func (s *Store) QueryMetrics(ctx context.Context, q MetricsQuery) ([]api.MetricSample, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultMetricsLimit
	}
	limit = min(limit, MaxMetricsLimit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.CollectorID != "" {
		cid, err := parseID(q.CollectorID)
		if err != nil {
			return nil, err
		}
		where = append(where, "sa.collector_id = "+arg(cid))
	}
	if q.Name != "" {
		where = append(where, "se.name = "+arg(q.Name))
	}
	from, ts, value, extra := "samples", `sa."timestamp"`, "sa.value", ""
	switch q.Step {
	case 0:
	case time.Minute, 5 * time.Minute, time.Hour:
		from, ts, value, extra = "samples_1m", "sa.bucket", "sa.sum / sa.count", ", sa.min, sa.max, sa.last, sa.count"
		switch q.Step {
		case 5 * time.Minute:
			from = "samples_5m"
		case time.Hour:
			from = "samples_1h"
		}
	default:
		return nil, fmt.Errorf("%w: step %s: want 1m, 5m or 1h", ErrInvalid, q.Step)
	}
	if !q.Since.IsZero() {
		since := q.Since
		if q.Step > 0 {
			since = since.Truncate(q.Step) // the bucket holding since
		}
		where = append(where, ts+` >= `+arg(since))
	}
	if !q.Until.IsZero() {
		where = append(where, ts+` <= `+arg(q.Until))
	}
	sql := `SELECT ` + ts + `, sa.collector_id::text, se.name, se.labels, ` + value + extra + `
	          FROM ` + from + ` sa JOIN series se ON se.collector_id = sa.collector_id AND se.id = sa.series_id`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY ` + ts + ` DESC, sa.series_id LIMIT ` + arg(limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query metrics: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.MetricSample, error) {
		var m api.MetricSample
		dst := []any{&m.Timestamp, &m.CollectorID, &m.Name, &m.Labels, &m.Value}
		if q.Step > 0 {
			m.Min, m.Max, m.Last = new(float64), new(float64), new(float64)
			dst = append(dst, m.Min, m.Max, m.Last, &m.Count)
		}
		err := row.Scan(dst...)
		if len(m.Labels) == 0 {
			m.Labels = nil
		}
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("query metrics: %w", err)
	}
	return out, nil
}
