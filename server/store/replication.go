package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/wait"
)

// Replication returns the latest snapshot of every active collector that has sent one, ordered by
// collector name; collectorID != "" restricts it to that collector (ErrNotFound if it is not an
// active collector; an empty list if it has not sent a snapshot yet).
func (s *Store) Replication(ctx context.Context, collectorID string) ([]api.CollectorTopology, error) {
	sql := `SELECT c.id::text, c.name, sn.received_at, sn.snapshot,
	               c.last_push_at < now() - 2 * make_interval(secs =>
	                   COALESCE(NULLIF(c.interval_seconds, 0), cc.interval_seconds, 10))
	          FROM collector_snapshots sn
	          JOIN collectors c ON c.id = sn.collector_id
	          LEFT JOIN collector_configs cc ON cc.collector_id = c.id
	         WHERE c.deleted_at IS NULL`
	var args []any
	if collectorID != "" {
		if _, err := s.Collector(ctx, collectorID); err != nil {
			return nil, err
		}
		cid, _ := parseID(collectorID) // validated by Collector
		sql += ` AND c.id = $1`
		args = append(args, cid)
	}
	rows, err := s.pool.Query(ctx, sql+` ORDER BY c.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("select snapshots: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.CollectorTopology, error) {
		var (
			t   api.CollectorTopology
			raw []byte
		)
		if err := row.Scan(&t.CollectorID, &t.CollectorName, &t.ReceivedAt, &raw, &t.Stale); err != nil {
			return t, err
		}
		if err := json.Unmarshal(raw, &t.Snapshot); err != nil {
			return t, fmt.Errorf("decode snapshot of collector %s: %w", t.CollectorID, err)
		}
		return t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("select snapshots: %w", err)
	}
	return out, nil
}

// ListenTopology blocks, LISTENing on TopologyChannel on a dedicated connection (not one of the
// pool's), calling fn(collectorID) for each notification, until ctx is done; then it returns nil.
// A lost connection is re-established with exponential backoff; notifications sent while it was
// down are lost, so callers that must not miss a change re-read the state after a reconnect
// (onReconnect of ListenTopologyWithReconnect).
func (s *Store) ListenTopology(ctx context.Context, fn func(collectorID string)) error {
	return s.ListenTopologyWithReconnect(ctx, fn, nil)
}

// ListenTopologyWithReconnect is ListenTopology with onReconnect (may be nil) called each time
// listening resumes after a lost connection, when notifications may have been missed.
func (s *Store) ListenTopologyWithReconnect(ctx context.Context, fn func(collectorID string), onReconnect func()) error {
	b := &backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: true}
	for connected := false; ; {
		err := s.listen(ctx, fn, func() {
			if connected && onReconnect != nil {
				onReconnect()
			}
			connected = true
			b.Reset()
		})
		if ctx.Err() != nil {
			return nil
		}
		delay := b.Next()
		s.log.Warn("topology listener lost its connection; reconnecting", "err", err, "retry_in", delay)
		if !wait.Sleep(ctx, delay) {
			return nil
		}
	}
}

// listen runs one connection's life: connect, LISTEN, then deliver notifications until an error.
func (s *Store) listen(ctx context.Context, fn func(string), listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.listenConf)
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{TopologyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		fn(n.Payload)
	}
}
