package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Alert names returned by Alerts.
const (
	AlertFailedAuth         = "FailedAuthHigh"
	AlertRateLimited        = "RateLimitedHigh"
	AlertCollectionFailures = "CollectionFailuresHigh"
	AlertDBErrors           = "DBErrorsHigh"
	AlertAPILatency         = "APILatencyP95High"
	AlertBufferUtilization  = "CollectorBufferHigh"
	AlertCollectorStale     = "CollectorStale"
	AlertReplicationLag     = "ReplicationLagHigh"
	AlertReplicationLagWAL  = "ReplicationLagBytesHigh"
	AlertSlotInactive       = "ReplicationSlotInactive"
	AlertSlotWALAtRisk      = "ReplicationSlotWALAtRisk"
	AlertStandbyDisconnect  = "StandbyDisconnected"
	AlertInstanceDown       = "InstanceDown"
)

// Severities of api.Alert.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Thresholds: the deployment plan's alert rules, and the replication ones. An alert fires when its
// value is above its threshold.
const (
	FailedAuthPerMinute             = 5
	RateLimitedPerMinute            = 100
	CollectionFailuresPercent       = 1
	DBErrorsPerMinute               = 5
	APILatencyP95Ms                 = 1000
	BufferUtilizationPercent        = 70
	ReplicationLagSeconds           = 30
	ReplicationLagBytes             = 64 << 20
	collectionFailureWindow         = 10 * time.Minute
	staleAfterIntervals             = 2
	alertsLockID              int64 = 0x7067612d616c7274
)

type alertRule struct {
	name, severity string
	threshold      float64
	summary        string // what the value measures, for the entry shown when nothing fires
}

// alertRules lists every alert in the order Alerts reports them.
func alertRules() []alertRule {
	return []alertRule{
		{AlertFailedAuth, SeverityWarning, FailedAuthPerMinute, "failed authentication attempts per minute"},
		{AlertRateLimited, SeverityWarning, RateLimitedPerMinute, "requests refused with 429 per minute"},
		{AlertDBErrors, SeverityCritical, DBErrorsPerMinute, "database errors per minute"},
		{AlertAPILatency, SeverityWarning, APILatencyP95Ms, "API response time p95 in ms (worst server)"},
		{AlertCollectionFailures, SeverityWarning, CollectionFailuresPercent, "collection failures in % of collections over 10 minutes (worst collector)"},
		{AlertBufferUtilization, SeverityWarning, BufferUtilizationPercent, "collector buffer utilization in % (worst collector)"},
		{AlertCollectorStale, SeverityWarning, staleAfterIntervals * DefaultIntervalSeconds, "seconds since a collector's last push (stale after two intervals)"},
		{AlertInstanceDown, SeverityCritical, 0, "monitored PostgreSQL instances down"},
		{AlertReplicationLag, SeverityWarning, ReplicationLagSeconds, "standby replay lag in seconds (worst standby)"},
		{AlertReplicationLagWAL, SeverityWarning, ReplicationLagBytes, "standby replay lag in bytes (worst standby)"},
		{AlertStandbyDisconnect, SeverityCritical, 0, "standbys disconnected from their primary"},
		{AlertSlotInactive, SeverityWarning, 0, "replication slots without an active consumer"},
		{AlertSlotWALAtRisk, SeverityCritical, 1, "replication slot wal_status (0 reserved, 1 extended, 2 unreserved, 3 lost; worst slot)"},
	}
}

// finding is one observed value of a rule, for one object (labels) or globally (no labels).
type finding struct {
	value, threshold float64
	labels           map[string]string
	summary          string
}

func (f finding) firing() bool { return f.value > f.threshold }

// Alerts evaluates the deployment plan's alert conditions and the replication ones from the
// database at now: the same answer on every API server. Each rule yields one entry per firing object
// (collector, standby, slot, instance), or a single not-firing entry carrying the worst value seen.
// Since is when an alert started firing, persisted in alert_state.
//
// Per-minute rates are the worst of the current and the previous minute, summed over servers
// (request_stats) or counted in the audit log; failed authentication is the larger of the audit
// log's failed login/refresh/registration attempts and the servers' reported auth failures.
func (s *Store) Alerts(ctx context.Context, now time.Time) ([]api.Alert, error) {
	rules := alertRules()
	found := make(map[string][]finding, len(rules))
	if err := s.requestFindings(ctx, now, found); err != nil {
		return nil, err
	}
	if err := s.collectorFindings(ctx, now, found); err != nil {
		return nil, err
	}
	if err := s.snapshotFindings(ctx, found); err != nil {
		return nil, err
	}

	var alerts []api.Alert
	for _, r := range rules {
		fs := found[r.name]
		var worst *finding
		fired := false
		for i := range fs {
			f := &fs[i]
			if f.firing() {
				fired = true
				alerts = append(alerts, api.Alert{
					Name: r.name, Severity: r.severity, Firing: true,
					Value: f.value, Threshold: f.threshold, Summary: f.summary, Labels: f.labels,
				})
			}
			if worst == nil || f.value-f.threshold > worst.value-worst.threshold {
				worst = f
			}
		}
		if fired {
			continue
		}
		a := api.Alert{Name: r.name, Severity: r.severity, Threshold: r.threshold, Summary: r.summary}
		if worst != nil {
			a.Value, a.Threshold = worst.value, worst.threshold
		}
		alerts = append(alerts, a)
	}
	if err := s.persistAlertState(ctx, now, alerts); err != nil {
		return nil, err
	}
	return alerts, nil
}

func (s *Store) requestFindings(ctx context.Context, now time.Time, found map[string][]finding) error {
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
	add := func(name string, value, threshold float64, format string) {
		found[name] = append(found[name], finding{value: value, threshold: threshold, summary: fmt.Sprintf(format, value, threshold)})
	}
	add(AlertFailedAuth, max(authFailures, auditFailures), FailedAuthPerMinute, "%.0f failed authentication attempts in a minute (threshold %.0f)")
	add(AlertRateLimited, rateLimited, RateLimitedPerMinute, "%.0f requests refused with 429 in a minute (threshold %.0f)")
	add(AlertDBErrors, dbErrors, DBErrorsPerMinute, "%.0f database errors in a minute (threshold %.0f)")
	add(AlertAPILatency, p95, APILatencyP95Ms, "API p95 response time %.0f ms (threshold %.0f ms)")
	return nil
}

func (s *Store) collectorFindings(ctx context.Context, now time.Time, found map[string][]finding) error {
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
		age := now.Sub(lastPush.Time).Seconds()
		found[AlertCollectorStale] = append(found[AlertCollectorStale], finding{
			value: age, threshold: staleAfterIntervals * interval, labels: labels,
			summary: fmt.Sprintf("collector %s last pushed %.0f s ago (interval %.0f s)", name, age, interval),
		})
		found[AlertBufferUtilization] = append(found[AlertBufferUtilization], finding{
			value: buffer * 100, threshold: BufferUtilizationPercent, labels: labels,
			summary: fmt.Sprintf("collector %s buffer %.0f %% full", name, buffer*100),
		})
		if curColl.Valid {
			ratio := failureRatio(curColl.Int64, curFail.Int64, baseColl, baseFl)
			found[AlertCollectionFailures] = append(found[AlertCollectionFailures], finding{
				value: ratio, threshold: CollectionFailuresPercent, labels: labels,
				summary: fmt.Sprintf("collector %s: %.1f %% of collections failed over 10 minutes", name, ratio),
			})
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

func (s *Store) snapshotFindings(ctx context.Context, found map[string][]finding) error {
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
		replicationFindings(id, name, &snap, found)
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

// replicationFindings evaluates one collector's snapshot.
func replicationFindings(collectorID, collectorName string, snap *api.Snapshot, found map[string][]finding) {
	add := func(rule string, value, threshold float64, labels map[string]string, format string, args ...any) {
		found[rule] = append(found[rule], finding{value: value, threshold: threshold, labels: labels, summary: fmt.Sprintf(format, args...)})
	}
	for _, cl := range snap.Clusters {
		base := map[string]string{"collector_id": collectorID, "collector_name": collectorName, "cluster": cl.SystemIdentifier}
		with := func(k, v string) map[string]string {
			l := maps.Clone(base)
			l[k] = v
			return l
		}
		for _, in := range cl.Instances {
			add(AlertInstanceDown, boolValue(!in.Up), 0, with("instance", in.Name), "instance %s (%s) is down: %s", in.Name, in.Address, in.Error)
			if in.Up && in.Role == "standby" {
				streaming := in.Receiver != nil && in.Receiver.Connected
				add(AlertStandbyDisconnect, boolValue(!streaming), 0, with("instance", in.Name),
					"standby %s has no streaming WAL receiver", in.Name)
			}
		}
		streamingSlots := map[string]bool{}
		for _, sb := range cl.Standbys {
			l := with("application_name", sb.ApplicationName)
			disconnected := sb.State == "disconnected"
			if !disconnected && sb.SlotName != "" {
				streamingSlots[sb.SlotName] = true
			}
			add(AlertStandbyDisconnect, boolValue(disconnected), 0, l, "standby %s is disconnected from its primary", sb.ApplicationName)
			add(AlertReplicationLag, sb.ReplayLagSeconds, ReplicationLagSeconds, l,
				"standby %s replays %.1f s behind its primary", sb.ApplicationName, sb.ReplayLagSeconds)
			add(AlertReplicationLagWAL, float64(sb.ReplayLagBytes), ReplicationLagBytes, l,
				"standby %s replays %d bytes behind its primary", sb.ApplicationName, sb.ReplayLagBytes)
		}
		disconnectedSlots := map[string]bool{}
		for _, sb := range cl.Standbys {
			if sb.State == "disconnected" && sb.SlotName != "" {
				disconnectedSlots[sb.SlotName] = true
			}
		}
		for _, sl := range cl.Slots {
			l := with("slot_name", sl.Name)
			add(AlertSlotInactive, boolValue(!sl.Active), 0, l, "replication slot %s (%s) has no active consumer and retains %d bytes of WAL",
				sl.Name, sl.Type, sl.RetainedBytes)
			add(AlertSlotWALAtRisk, walStatusCode(sl.WALStatus), 1, l, "replication slot %s wal_status is %s", sl.Name, sl.WALStatus)
			// A physical slot nobody streams from is a standby gone missing, unless that standby is
			// already reported disconnected above.
			if sl.Type == "physical" && !sl.Active && !streamingSlots[sl.Name] && !disconnectedSlots[sl.Name] {
				add(AlertStandbyDisconnect, 1, 0, l, "no standby streams from physical slot %s", sl.Name)
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

// alertKey is the canonical form of an alert's labels.
func alertKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	return b.String()
}

// persistAlertState records the firing alerts, fills in their Since (when they first fired) and
// forgets those that stopped firing, serialised between servers.
func (s *Store) persistAlertState(ctx context.Context, now time.Time, alerts []api.Alert) error {
	var names, keys, labels []string
	index := map[[2]string][]int{} // one object may be reported twice (e.g. two standbys of one name)
	for i, a := range alerts {
		if !a.Firing {
			continue
		}
		k := alertKey(a.Labels)
		if prev, dup := index[[2]string{a.Name, k}]; dup {
			index[[2]string{a.Name, k}] = append(prev, i)
			continue
		}
		l := a.Labels
		if l == nil {
			l = map[string]string{}
		}
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("encode alert labels: %w", err)
		}
		index[[2]string{a.Name, k}] = []int{i}
		names, keys, labels = append(names, a.Name), append(keys, k), append(labels, string(b))
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, alertsLockID); err != nil {
			return fmt.Errorf("lock alert state: %w", err)
		}
		rows, err := tx.Query(ctx, `
			WITH firing AS (
			    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(name, key, labels)
			), up AS (
			    INSERT INTO alert_state (name, key, labels, since, last_seen)
			    SELECT name, key, labels::jsonb, $4, $4 FROM firing
			    ON CONFLICT (name, key) DO UPDATE SET last_seen = EXCLUDED.last_seen
			    RETURNING name, key, since
			), resolved AS (
			    DELETE FROM alert_state a
			     WHERE NOT EXISTS (SELECT 1 FROM firing f WHERE f.name = a.name AND f.key = a.key)
			)
			SELECT name, key, since FROM up`, names, keys, labels, now)
		if err != nil {
			return fmt.Errorf("update alert state: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name, key string
				since     time.Time
			)
			if err := rows.Scan(&name, &key, &since); err != nil {
				return fmt.Errorf("update alert state: %w", err)
			}
			for _, i := range index[[2]string{name, key}] {
				alerts[i].Since = &since
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("update alert state: %w", err)
		}
		return nil
	})
}
