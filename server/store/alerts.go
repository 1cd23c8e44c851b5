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
	members, err := s.snapshotFindings(ctx, &obs)
	if err != nil {
		return nil, err
	}
	if err := s.sampleFindings(ctx, now, members, &obs); err != nil {
		return nil, err
	}
	if err := s.eventFindings(ctx, now, &obs); err != nil {
		return nil, err
	}
	return obs, nil
}

// eventFindings counts the replication events of the last alerting.EventWindow per kind, cluster
// and member.
func (s *Store) eventFindings(ctx context.Context, now time.Time, obs *observations) error {
	rows, err := s.pool.Query(ctx, `
		SELECT kind, system_identifier, cluster, instance, count(*)::float8 FROM events
		 WHERE at > $1 AND system_identifier <> '' GROUP BY 1, 2, 3, 4`, now.Add(-alerting.EventWindow))
	if err != nil {
		return fmt.Errorf("evaluate replication events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			kind, cluster, name, instance string
			n                             float64
		)
		if err := rows.Scan(&kind, &cluster, &name, &instance, &n); err != nil {
			return fmt.Errorf("evaluate replication events: %w", err)
		}
		obs.add(alerting.EventQuantity(kind), n, map[string]string{"cluster": cluster, "cluster_name": name, "instance": instance})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evaluate replication events: %w", err)
	}
	return nil
}

// member is a monitored instance as the snapshots name it, found by its collector and address
// (the samples' "instance" label).
type member struct{ collectorID, address string }

type memberRef struct{ collectorName, cluster, name string }

// Quantities read from the samples of the last sampleWindow; a growth rate needs samples
// spanning at least minGrowthSpan.
const (
	sampleWindow  = 15 * time.Minute
	minGrowthSpan = 20 * time.Second
)

// sampleFindings observes what needs a metric's recent history: transaction ID wraparound, the
// archiver's failures, and each replication slot's time to loss at its retained-WAL growth rate.
func (s *Store) sampleFindings(ctx context.Context, now time.Time, members map[member]memberRef, obs *observations) error {
	rows, err := s.pool.Query(ctx, `
		-- The first and the last sample of each series in the window: two index probes a series.
		SELECT se.collector_id::text, se.name, se.labels, l.value, f.value,
		       extract(epoch FROM l.at - f.at)::float8
		  FROM series se
		  JOIN collectors c ON c.id = se.collector_id AND c.deleted_at IS NULL
		 CROSS JOIN LATERAL (
		       SELECT sa.value, sa."timestamp" AS at FROM samples sa
		        WHERE sa.collector_id = se.collector_id AND sa.series_id = se.id
		          AND sa."timestamp" > $2::timestamptz - $3::bigint * interval '1 microsecond' AND sa."timestamp" <= $2
		        ORDER BY sa."timestamp" DESC LIMIT 1) l
		 CROSS JOIN LATERAL (
		       SELECT sa.value, sa."timestamp" AS at FROM samples sa
		        WHERE sa.collector_id = se.collector_id AND sa.series_id = se.id
		          AND sa."timestamp" > $2::timestamptz - $3::bigint * interval '1 microsecond' AND sa."timestamp" <= $2
		        ORDER BY sa."timestamp" LIMIT 1) f
		 WHERE se.name = ANY($1)`,
		[]string{"pg_database_xid_wraparound_pct", "pg_archiver_failed_total", "pg_replication_slot_retained_bytes",
			"pg_replication_slot_safe_wal_size_bytes"}, now, sampleWindow.Microseconds())
	if err != nil {
		return fmt.Errorf("evaluate sample alerts: %w", err)
	}
	defer rows.Close()
	type slotKey struct{ collectorID, instance, slot string }
	type slotSeries struct {
		growth, span, safe   float64
		haveGrowth, haveSafe bool
		labels               map[string]string
	}
	slots := map[slotKey]*slotSeries{}
	for rows.Next() {
		var (
			collectorID, name string
			labels            map[string]string
			last, first, span float64
		)
		if err := rows.Scan(&collectorID, &name, &labels, &last, &first, &span); err != nil {
			return fmt.Errorf("evaluate sample alerts: %w", err)
		}
		ref, ok := members[member{collectorID, labels["instance"]}]
		if !ok {
			continue // an instance no snapshot places in a cluster
		}
		l := map[string]string{"collector_id": collectorID, "collector_name": ref.collectorName, "cluster": ref.cluster, "instance": ref.name}
		switch name {
		case "pg_database_xid_wraparound_pct":
			l["datname"] = labels["datname"]
			obs.add("xid_wraparound_percent", last, l)
		case "pg_archiver_failed_total":
			increase := last - first
			if increase < 0 {
				increase = last // the counter was reset (a restart) within the window
			}
			obs.add("archiver_failures_15m", increase, l)
		case "pg_replication_slot_retained_bytes", "pg_replication_slot_safe_wal_size_bytes":
			k := slotKey{collectorID, labels["instance"], labels["slot_name"]}
			sl := slots[k]
			if sl == nil {
				l["slot_name"] = labels["slot_name"]
				sl = &slotSeries{labels: l}
				slots[k] = sl
			}
			if name == "pg_replication_slot_safe_wal_size_bytes" {
				sl.safe, sl.haveSafe = last, true
			} else {
				sl.growth, sl.span, sl.haveGrowth = last-first, span, true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evaluate sample alerts: %w", err)
	}
	// Time to loss: how long until the slot's retained WAL outgrows what max_slot_wal_keep_size
	// still lets it keep (safe_wal_size), at the growth rate of the window. A slot that does not
	// grow, or has no limit (no safe_wal_size), has none.
	for _, sl := range slots {
		if !sl.haveSafe || !sl.haveGrowth || sl.span < minGrowthSpan.Seconds() || sl.growth <= 0 {
			continue
		}
		rate := sl.growth / sl.span
		obs.add("slot_time_to_loss_seconds", max(0, sl.safe)/rate, sl.labels)
	}
	return nil
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
	obs.add("watchdog", 1, nil)
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

// snapshotFindings observes every collector's snapshot and returns where each monitored instance
// sits (its cluster and name) for the sample-based quantities.
func (s *Store) snapshotFindings(ctx context.Context, obs *observations) (map[member]memberRef, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.id::text, c.name, sn.snapshot
		  FROM collector_snapshots sn JOIN collectors c ON c.id = sn.collector_id
		 WHERE c.deleted_at IS NULL ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("evaluate replication alerts: %w", err)
	}
	defer rows.Close()
	members := map[member]memberRef{}
	primaries := map[string]map[string]bool{} // cluster → primaries' addresses, over every collector
	timelines := map[string]int64{}           // cluster → its highest timeline
	for rows.Next() {
		var (
			id, name string
			raw      []byte
			snap     api.Snapshot
		)
		if err := rows.Scan(&id, &name, &raw); err != nil {
			return nil, fmt.Errorf("evaluate replication alerts: %w", err)
		}
		if err := json.Unmarshal(raw, &snap); err != nil {
			s.log.Error("stored snapshot does not decode; replication alerts skip it", "collector_id", id, "err", err)
			continue
		}
		replicationFindings(id, name, &snap, obs)
		for _, cl := range snap.Clusters {
			if cl.SystemIdentifier == "" {
				continue // instances never reached: no cluster to speak of
			}
			if primaries[cl.SystemIdentifier] == nil {
				primaries[cl.SystemIdentifier] = map[string]bool{}
			}
			timelines[cl.SystemIdentifier] = max(timelines[cl.SystemIdentifier], cl.Timeline)
			for _, in := range cl.Instances {
				members[member{id, in.Address}] = memberRef{collectorName: name, cluster: cl.SystemIdentifier, name: in.Name}
				if in.Up && in.Role == "primary" {
					primaries[cl.SystemIdentifier][in.Address] = true
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evaluate replication alerts: %w", err)
	}
	for cluster, addrs := range primaries {
		obs.add("cluster_primaries", float64(len(addrs)), map[string]string{"cluster": cluster})
	}
	if err := s.trackRoles(ctx, primaries, timelines, obs); err != nil {
		return nil, err
	}
	return members, nil
}

// trackRoles compares each cluster that has exactly one primary with the primary and timeline
// stored from before, records a change, and observes how long ago the last one was: a failover
// or promotion stays an alert for as long as the rule's threshold says. One statement for every
// cluster.
func (s *Store) trackRoles(ctx context.Context, primaries map[string]map[string]bool, timelines map[string]int64, obs *observations) error {
	var clusters, addresses []string
	var tls []int64
	for cluster, addrs := range primaries {
		if len(addrs) != 1 {
			continue // none or several: cluster_primaries says so; the record waits for one
		}
		for a := range addrs {
			clusters, addresses, tls = append(clusters, cluster), append(addresses, a), append(tls, timelines[cluster])
		}
	}
	if len(clusters) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `
		INSERT INTO cluster_roles AS r (cluster, primary_address, timeline, seen_at)
		SELECT c, a, t, now() FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(c, a, t)
		ON CONFLICT (cluster) DO UPDATE SET
		       primary_changed_at  = CASE WHEN r.primary_address <> EXCLUDED.primary_address THEN now() ELSE r.primary_changed_at END,
		       previous_address    = CASE WHEN r.primary_address <> EXCLUDED.primary_address THEN r.primary_address ELSE r.previous_address END,
		       timeline_changed_at = CASE WHEN r.timeline <> EXCLUDED.timeline THEN now() ELSE r.timeline_changed_at END,
		       previous_timeline   = CASE WHEN r.timeline <> EXCLUDED.timeline THEN r.timeline ELSE r.previous_timeline END,
		       primary_address = EXCLUDED.primary_address, timeline = EXCLUDED.timeline, seen_at = now()
		RETURNING cluster, primary_address,
		          extract(epoch FROM now() - primary_changed_at)::float8, extract(epoch FROM now() - timeline_changed_at)::float8`,
		clusters, addresses, tls)
	if err != nil {
		return fmt.Errorf("track cluster roles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			cluster, primary        string
			primaryAge, timelineAge pgtype.Float8
		)
		if err := rows.Scan(&cluster, &primary, &primaryAge, &timelineAge); err != nil {
			return fmt.Errorf("track cluster roles: %w", err)
		}
		labels := map[string]string{"cluster": cluster, "primary": primary}
		if primaryAge.Valid {
			obs.add("primary_change_age_seconds", primaryAge.Float64, labels)
		}
		if timelineAge.Valid {
			obs.add("timeline_change_age_seconds", timelineAge.Float64, maps.Clone(labels))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("track cluster roles: %w", err)
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
