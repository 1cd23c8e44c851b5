package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Collector configuration defaults, served until an admin PUTs a configuration.
const (
	DefaultIntervalSeconds     = 10
	DefaultQueryTimeoutSeconds = 5
	maxIntervalSeconds         = 3600
	maxQueryTimeoutSeconds     = 3600
)

// Collector status values of api.Collector.Status.
const (
	CollectorActive      = "active"
	CollectorStale       = "stale"
	CollectorNeverPushed = "never_pushed"
)

// collectorColumns is what scanCollector reads. effective_interval is the interval staleness is
// judged by: what the collector last reported, else its configuration, else the default. A
// collector is stale when it has not pushed within two of those intervals.
const collectorColumns = `
	c.id::text, c.name, c.hostname, c.version, c.registered_at, c.last_push_at,
	c.interval_seconds, c.instances, c.buffer_utilization, c.buffer_dropped_total,
	c.collection_failures_total, c.collections_total,
	CASE WHEN c.last_push_at IS NULL THEN 'never_pushed'
	     WHEN c.last_push_at < now() - 2 * make_interval(secs =>
	          COALESCE(NULLIF(c.interval_seconds, 0), cc.interval_seconds, 10)) THEN 'stale'
	     ELSE 'active' END`

const collectorFrom = `
	FROM collectors c LEFT JOIN collector_configs cc ON cc.collector_id = c.id
	WHERE c.deleted_at IS NULL`

func scanCollector(row pgx.Row) (api.Collector, error) {
	var (
		c        api.Collector
		lastPush pgtype.Timestamptz
	)
	err := row.Scan(&c.ID, &c.Name, &c.Hostname, &c.Version, &c.RegisteredAt, &lastPush,
		&c.IntervalSeconds, &c.Instances, &c.BufferUtilization, &c.BufferDroppedTotal,
		&c.CollectionFailuresTotal, &c.CollectionsTotal, &c.Status)
	c.LastPushAt = timePtr(lastPush)
	return c, err
}

// CreateCollector registers a collector whose JWT has the id tokenID. ErrConflict when an active
// collector already has the name; ErrInvalid on an empty name or token id.
func (s *Store) CreateCollector(ctx context.Context, name, hostname, tokenID string) (api.Collector, error) {
	if name == "" || tokenID == "" {
		return api.Collector{}, fmt.Errorf("%w: collector name and token id are required", ErrInvalid)
	}
	c := api.Collector{Name: name, Hostname: hostname, Status: CollectorNeverPushed}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO collectors (name, hostname, token_id) VALUES ($1, $2, $3) RETURNING id::text, registered_at`,
			name, hostname, tokenID).Scan(&c.ID, &c.RegisteredAt)
		if err != nil {
			return err
		}
		_, err = insertEvents(ctx, tx, []api.Event{{At: c.RegisteredAt, Kind: api.EventCollectorRegistered, Severity: api.SeverityInfo,
			Message: fmt.Sprintf("collector %s registered from %s", name, hostname),
			Details: map[string]any{"collector_id": c.ID, "collector_name": name, "hostname": hostname}}})
		return err
	})
	if err != nil {
		if pgCode(err) == codeUniqueViolation {
			return api.Collector{}, ErrConflict
		}
		return api.Collector{}, fmt.Errorf("insert collector: %w", err)
	}
	return c, nil
}

// Collector returns an active collector. ErrNotFound, also for a deregistered collector or a
// malformed id.
func (s *Store) Collector(ctx context.Context, id string) (api.Collector, error) {
	cid, err := parseID(id)
	if err != nil {
		return api.Collector{}, err
	}
	c, err := scanCollector(s.pool.QueryRow(ctx, `SELECT `+collectorColumns+collectorFrom+` AND c.id = $1`, cid))
	if err != nil {
		return api.Collector{}, notFound(err, "select collector")
	}
	return c, nil
}

// ListCollectors returns the active collectors ordered by name.
func (s *Store) ListCollectors(ctx context.Context) ([]api.Collector, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+collectorColumns+collectorFrom+` ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("list collectors: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.Collector, error) { return scanCollector(row) })
	if err != nil {
		return nil, fmt.Errorf("list collectors: %w", err)
	}
	return list, nil
}

// CollectorTokenActive reports whether tokenID is the current token of the active collector
// collectorID: one primary-key lookup, meant for every collector request.
func (s *Store) CollectorTokenActive(ctx context.Context, collectorID, tokenID string) (bool, error) {
	cid, err := parseID(collectorID)
	if err != nil || tokenID == "" {
		return false, nil
	}
	var active bool
	err = s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM collectors WHERE id = $1 AND token_id = $2 AND deleted_at IS NULL)`,
		cid, tokenID).Scan(&active)
	if err != nil {
		return false, fmt.Errorf("check collector token: %w", err)
	}
	return active, nil
}

// DeleteCollector deregisters a collector and revokes its token. Its metrics stay until retention
// drops them; its name becomes free. ErrNotFound.
func (s *Store) DeleteCollector(ctx context.Context, id string) error {
	cid, err := parseID(id)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			name string
			at   time.Time
		)
		err := tx.QueryRow(ctx,
			`UPDATE collectors SET deleted_at = now(), token_id = NULL WHERE id = $1 AND deleted_at IS NULL RETURNING name, deleted_at`,
			cid).Scan(&name, &at)
		if err != nil {
			return notFound(err, "delete collector")
		}
		_, err = insertEvents(ctx, tx, []api.Event{{At: at, Kind: api.EventCollectorDeleted, Severity: api.SeverityWarning,
			Message: "collector " + name + " deleted", Details: map[string]any{"collector_id": id, "collector_name": name}}})
		return err
	})
}

// CollectorConfig returns the collector's configuration, or the defaults (interval 10 s,
// pg_replication on, query timeout 5 s, no UpdatedAt) until an admin PUTs one. ErrNotFound if no
// such active collector.
func (s *Store) CollectorConfig(ctx context.Context, collectorID string) (api.CollectorConfig, error) {
	cid, err := parseID(collectorID)
	if err != nil {
		return api.CollectorConfig{}, err
	}
	var (
		cfg       = api.CollectorConfig{CollectorID: cid.String()}
		interval  pgtype.Int4
		repl      pgtype.Bool
		timeout   pgtype.Int4
		updatedAt pgtype.Timestamptz
		updatedBy pgtype.Text
	)
	err = s.pool.QueryRow(ctx, `
		SELECT cc.interval_seconds, cc.pg_replication_enabled, cc.query_timeout_seconds, cc.updated_at, cc.updated_by
		  FROM collectors c LEFT JOIN collector_configs cc ON cc.collector_id = c.id
		 WHERE c.id = $1 AND c.deleted_at IS NULL`, cid).
		Scan(&interval, &repl, &timeout, &updatedAt, &updatedBy)
	if err != nil {
		return api.CollectorConfig{}, notFound(err, "select collector config")
	}
	if !interval.Valid {
		cfg.IntervalSeconds = DefaultIntervalSeconds
		cfg.PgReplicationEnabled = true
		cfg.QueryTimeoutSeconds = DefaultQueryTimeoutSeconds
		return cfg, nil
	}
	cfg.IntervalSeconds = int(interval.Int32)
	cfg.PgReplicationEnabled = repl.Bool
	cfg.QueryTimeoutSeconds = int(timeout.Int32)
	cfg.UpdatedAt = timePtr(updatedAt)
	cfg.UpdatedBy = updatedBy.String
	return cfg, nil
}

// PutCollectorConfig replaces the collector's configuration and returns it as stored.
// ErrNotFound if no such active collector; ErrInvalid for an interval or query timeout outside
// 1..3600 s.
func (s *Store) PutCollectorConfig(ctx context.Context, cfg api.CollectorConfig, updatedBy string) (api.CollectorConfig, error) {
	cid, err := parseID(cfg.CollectorID)
	if err != nil {
		return api.CollectorConfig{}, err
	}
	if cfg.IntervalSeconds < 1 || cfg.IntervalSeconds > maxIntervalSeconds ||
		cfg.QueryTimeoutSeconds < 1 || cfg.QueryTimeoutSeconds > maxQueryTimeoutSeconds {
		return api.CollectorConfig{}, fmt.Errorf("%w: interval_seconds and query_timeout_seconds must be 1..%d", ErrInvalid, maxIntervalSeconds)
	}
	var updatedAt time.Time
	err = s.pool.QueryRow(ctx, `
		INSERT INTO collector_configs (collector_id, interval_seconds, pg_replication_enabled, query_timeout_seconds, updated_by)
		SELECT id, $2, $3, $4, $5 FROM collectors WHERE id = $1 AND deleted_at IS NULL
		ON CONFLICT (collector_id) DO UPDATE SET
		       interval_seconds = EXCLUDED.interval_seconds,
		       pg_replication_enabled = EXCLUDED.pg_replication_enabled,
		       query_timeout_seconds = EXCLUDED.query_timeout_seconds,
		       updated_at = now(),
		       updated_by = EXCLUDED.updated_by
		RETURNING updated_at`,
		cid, cfg.IntervalSeconds, cfg.PgReplicationEnabled, cfg.QueryTimeoutSeconds, updatedBy).Scan(&updatedAt)
	if err != nil {
		return api.CollectorConfig{}, notFound(err, "upsert collector config")
	}
	cfg.CollectorID = cid.String()
	cfg.UpdatedAt = &updatedAt
	cfg.UpdatedBy = updatedBy
	return cfg, nil
}
