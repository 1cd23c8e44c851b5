package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
)

// Alert-related constants of the observations.
const (
	collectionFailureWindow = 10 * time.Minute
	// AlertingLockID is the advisory lock the evaluating API server holds (one at a time).
	AlertingLockID int64 = 0x7067612d616c7274
)

// observations collects what Observe sees, quantity by quantity.
type observations []alerting.Observation

func (o *observations) add(quantity string, value float64, labels map[string]string) {
	*o = append(*o, alerting.Observation{Quantity: quantity, Value: value, Labels: labels})
}

// Observe measures every quantity the alert rules can read (alerting.Quantities) from the database
// at now: the same answer on every API server. Per-minute rates are the worst of the current and
// the previous minute, summed over servers (request_stats) or counted in the audit log; failed
// authentication is the larger of the audit log's failed login/refresh/registration attempts and
// the servers' reported auth failures. Per-object quantities carry the object's labels
// (collector_id and collector_name, cluster, instance, application_name, slot_name).
func (s *Store) Observe(ctx context.Context, now time.Time) ([]alerting.Observation, error) {
	var obs observations
	if err := s.requestFindings(ctx, now, &obs); err != nil {
		return nil, err
	}
	if err := s.collectorFindings(ctx, now, &obs); err != nil {
		return nil, err
	}
	if err := s.snapshotFindings(ctx, &obs); err != nil {
		return nil, err
	}
	return obs, nil
}

func (s *Store) requestFindings(ctx context.Context, now time.Time, obs *observations) error {
	var rateLimited, dbErrors, authFailures, p95, auditFailures float64
	err := s.pool.QueryRow(ctx, `
		WITH stats AS (
		    SELECT minute, sum(rate_limited) AS rate_limited, sum(db_errors) AS db_errors,
		           sum(auth_failures) AS auth_failures, max(duration_p95_ms) AS p95
		      FROM request_stats
		     WHERE minute >= date_trunc('minute', $1::timestamptz) - interval '1 minute' AND minute <= $1
		     GROUP BY minute
		), audit AS (
		    SELECT date_trunc('minute', at) AS minute, count(*) AS failures
		      FROM audit_log
		     -- Unsuccessful authentication attempts, whichever way the HTTP layer names them.
		     WHERE NOT success
		       AND action IN ('login', 'login_failed', 'refresh', 'refresh_failed', 'refresh_reused',
		                    'register', 'register_failed', 'auth_failed')
		       AND at >= date_trunc('minute', $1::timestamptz) - interval '1 minute' AND at <= $1
		     GROUP BY 1
		)
		SELECT (SELECT COALESCE(max(rate_limited), 0)::float8 FROM stats),
		       (SELECT COALESCE(max(db_errors), 0)::float8 FROM stats),
		       (SELECT COALESCE(max(auth_failures), 0)::float8 FROM stats),
		       (SELECT COALESCE(max(p95), 0)::float8 FROM stats),
		       (SELECT COALESCE(max(failures), 0)::float8 FROM audit)`,
		now).Scan(&rateLimited, &dbErrors, &authFailures, &p95, &auditFailures)
	if err != nil {
		return fmt.Errorf("evaluate request alerts: %w", err)
	}
	obs.add("auth_failures_per_minute", max(authFailures, auditFailures), nil)
	obs.add("rate_limited_per_minute", rateLimited, nil)
	obs.add("db_errors_per_minute", dbErrors, nil)
	obs.add("api_p95_ms", p95, nil)
	return nil
}

func (s *Store) collectorFindings(ctx context.Context, now time.Time, obs *observations) error {
	rows, err := s.pool.Query(ctx, `
		SELECT c.id::text, c.name, c.last_push_at,
		       COALESCE(NULLIF(c.interval_seconds, 0), cc.interval_seconds, $3)::float8,
		       c.buffer_utilization,
		       cur.collections_total, cur.collection_failures_total,
		       base.collections_total, base.collection_failures_total
		  FROM collectors c
		  LEFT JOIN collector_configs cc ON cc.collector_id = c.id
		  LEFT JOIN LATERAL (
		       SELECT h.collections_total, h.collection_failures_total FROM collector_status_history h
		        WHERE h.collector_id = c.id AND h.at <= $1 ORDER BY h.at DESC LIMIT 1) cur ON true
		  LEFT JOIN LATERAL (
		       SELECT h.collections_total, h.collection_failures_total FROM collector_status_history h
		        WHERE h.collector_id = c.id AND h.at <= $1::timestamptz - $2::bigint * interval '1 microsecond'
		        ORDER BY h.at DESC LIMIT 1) base ON true
		 WHERE c.deleted_at IS NULL
		 ORDER BY c.name`, now, collectionFailureWindow.Microseconds(), DefaultIntervalSeconds)
	if err != nil {
		return fmt.Errorf("evaluate collector alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, name                           string
			lastPush                           pgtype.Timestamptz
			interval, buffer                   float64
			curColl, curFail, baseColl, baseFl pgtype.Int8
		)
		if err := rows.Scan(&id, &name, &lastPush, &interval, &buffer, &curColl, &curFail, &baseColl, &baseFl); err != nil {
			return fmt.Errorf("evaluate collector alerts: %w", err)
		}
		if !lastPush.Valid {
			continue // registered, never pushed: nothing reported yet
		}
		labels := map[string]string{"collector_id": id, "collector_name": name}
		obs.add("collector_push_age_intervals", now.Sub(lastPush.Time).Seconds()/interval, labels)
		obs.add("buffer_utilization_percent", buffer*100, labels)
		if curColl.Valid {
			obs.add("collection_failures_percent", failureRatio(curColl.Int64, curFail.Int64, baseColl, baseFl), labels)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evaluate collector alerts: %w", err)
	}
	return nil
}

// failureRatio is the percentage of failed collections since the baseline (the last report at
// least a window ago). Without a baseline, or after the collector restarted (counters went down),
// the counters themselves are the increase since the collector started.
func failureRatio(coll, fail int64, baseColl, baseFail pgtype.Int8) float64 {
	if baseColl.Valid && coll >= baseColl.Int64 && fail >= baseFail.Int64 {
		coll -= baseColl.Int64
		fail -= baseFail.Int64
	}
	switch {
	case fail <= 0:
		return 0
	case coll <= 0:
		return 100
	}
	return min(100, 100*float64(fail)/float64(coll))
}

func (s *Store) snapshotFindings(ctx context.Context, obs *observations) error {
	rows, err := s.pool.Query(ctx, `
		SELECT c.id::text, c.name, sn.snapshot
		  FROM collector_snapshots sn JOIN collectors c ON c.id = sn.collector_id
		 WHERE c.deleted_at IS NULL ORDER BY c.name`)
	if err != nil {
		return fmt.Errorf("evaluate replication alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, name string
			raw      []byte
			snap     api.Snapshot
		)
		if err := rows.Scan(&id, &name, &raw); err != nil {
			return fmt.Errorf("evaluate replication alerts: %w", err)
		}
		if err := json.Unmarshal(raw, &snap); err != nil {
			s.log.Error("stored snapshot does not decode; replication alerts skip it", "collector_id", id, "err", err)
			continue
		}
		replicationFindings(id, name, &snap, obs)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evaluate replication alerts: %w", err)
	}
	return nil
}

// walStatusCode encodes pg_replication_slots.wal_status as the metric catalog does.
func walStatusCode(status string) float64 {
	switch status {
	case "extended":
		return 1
	case "unreserved":
		return 2
	case "lost":
		return 3
	}
	return 0
}

// replicationFindings observes one collector's snapshot.
func replicationFindings(collectorID, collectorName string, snap *api.Snapshot, obs *observations) {
	for _, cl := range snap.Clusters {
		base := map[string]string{"collector_id": collectorID, "collector_name": collectorName, "cluster": cl.SystemIdentifier}
		with := func(k, v string) map[string]string {
			l := maps.Clone(base)
			l[k] = v
			return l
		}
		for _, in := range cl.Instances {
			obs.add("instance_down", boolValue(!in.Up), with("instance", in.Name))
			if in.Up && in.Role == "standby" {
				streaming := in.Receiver != nil && in.Receiver.Connected
				obs.add("standby_disconnected", boolValue(!streaming), with("instance", in.Name))
			}
		}
		streamingSlots := map[string]bool{}
		disconnectedSlots := map[string]bool{}
		for _, sb := range cl.Standbys {
			l := with("application_name", sb.ApplicationName)
			disconnected := sb.State == "disconnected"
			if sb.SlotName != "" {
				if disconnected {
					disconnectedSlots[sb.SlotName] = true
				} else {
					streamingSlots[sb.SlotName] = true
				}
			}
			obs.add("standby_disconnected", boolValue(disconnected), l)
			if disconnected {
				continue // a disconnected standby's lag is unknown, not zero
			}
			obs.add("replay_lag_seconds", sb.ReplayLagSeconds, l)
			obs.add("replay_lag_bytes", float64(sb.ReplayLagBytes), l)
		}
		for _, sl := range cl.Slots {
			l := with("slot_name", sl.Name)
			obs.add("slot_inactive", boolValue(!sl.Active), l)
			obs.add("slot_wal_status", walStatusCode(sl.WALStatus), l)
			// A physical slot nobody streams from is a standby gone missing, unless that standby is
			// already reported disconnected above.
			if sl.Type == "physical" && !sl.Active && !streamingSlots[sl.Name] && !disconnectedSlots[sl.Name] {
				obs.add("standby_disconnected", 1, l)
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// AlertsState is the last evaluation of the alert rules, as the evaluating server stored it.
type AlertsState struct {
	EvaluatedAt time.Time
	EvaluatedBy string
	Alerts      []alerting.Alert
}

// SaveAlerts replaces the stored alerts with an evaluation's (the evaluating server's, at at).
func (s *Store) SaveAlerts(ctx context.Context, at time.Time, by string, alerts []alerting.Alert) error {
	ids := make([]string, 0, len(alerts))
	docs := make([]string, 0, len(alerts))
	for _, a := range alerts {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode alert: %w", err)
		}
		ids, docs = append(ids, a.ID()), append(docs, string(b))
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM alert_states`); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO alert_states (id, rule, severity, state, alert)
			SELECT u.id, d->>'rule', d->>'severity', d->>'state', d
			  FROM unnest($1::text[], $2::jsonb[]) AS u(id, d)`, ids, docs); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO alerting_status (id, evaluated_at, evaluated_by) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at, evaluated_by = EXCLUDED.evaluated_by`,
			at, by); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		return nil
	})
}

// LoadAlerts returns the last evaluation (zero EvaluatedAt when there was none yet), read in one
// snapshot so that the alerts and their evaluation time belong together.
func (s *Store) LoadAlerts(ctx context.Context) (AlertsState, error) {
	var st AlertsState
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT evaluated_at, evaluated_by FROM alerting_status WHERE id = 1`).Scan(&st.EvaluatedAt, &st.EvaluatedBy)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT alert FROM alert_states ORDER BY id`)
		if err != nil {
			return err
		}
		st.Alerts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (alerting.Alert, error) {
			var a alerting.Alert
			err := row.Scan(&a)
			return a, err
		})
		return err
	})
	if err != nil {
		return AlertsState{}, fmt.Errorf("load alerts: %w", err)
	}
	return st, nil
}

// RunAsLeader runs fn while this process holds the advisory lock lockID, on a connection of its
// own: at most one process at a time, whichever took it first. Another one trying every retry
// takes over within that long once the holder's connection is gone (the lock goes with it). fn's
// context ends when the lock is lost or ctx ends; RunAsLeader returns when ctx ends.
func (s *Store) RunAsLeader(ctx context.Context, lockID int64, retry time.Duration, fn func(ctx context.Context)) {
	for ctx.Err() == nil {
		if err := s.lead(ctx, lockID, retry, fn); err != nil && ctx.Err() == nil {
			s.log.Warn("alerting leadership", "err", err)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Store) lead(ctx context.Context, lockID int64, check time.Duration, fn func(ctx context.Context)) error {
	conn, err := pgx.ConnectConfig(ctx, s.listenConf)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the session lock goes with the connection
	}()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&got); err != nil {
			return fmt.Errorf("try lock: %w", err)
		}
		if got {
			break
		}
		t := time.NewTimer(check)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	leadCtx, lost := context.WithCancel(ctx)
	defer lost()
	done := make(chan struct{})
	go func() { defer close(done); fn(leadCtx) }()
	// The lock lasts as long as the connection: check it, and stop fn as soon as it is gone.
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, check)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				lost()
				<-done
				return fmt.Errorf("lock connection lost: %w", err)
			}
		}
	}
}
