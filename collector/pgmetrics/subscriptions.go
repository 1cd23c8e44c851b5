package pgmetrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Subscription is one logical subscription (pg_subscription, a catalog shared by every database)
// with its apply worker and, where the version has them, its error counters.
type Subscription struct {
	OID               uint32
	Name              string
	Database          string
	Enabled           bool
	LastMsgAgeSeconds *float64 // nil when no apply worker runs
	ApplyErrors       int64    // 15+
	SyncErrors        int64    // 15+
	RelNotReady       *int64   // tables not yet in state 'r'; nil when its database could not be read
}

// The apply worker row of pg_stat_subscription is told apart differently per version: relid IS
// NULL until 15; 16 adds parallel apply workers (also relid NULL, but with a leader_pid); 17 names
// the kind in worker_type. pg_stat_subscription_stats (error counters) exists since 15. Only the
// pg_subscription columns granted to PUBLIC are read (subconninfo is not).
const subscriptionsSQL = `
SELECT s.oid, s.subname::text, d.datname::text, s.subenabled,
       EXTRACT(epoch FROM now() - w.last_msg_receipt_time)::float8,
       %[2]s
FROM pg_subscription s
JOIN pg_database d ON d.oid = s.subdbid
LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND %[1]s
%[3]s
ORDER BY s.subname`

// On 13 pg_subscription.oid is not readable by PUBLIC (14 granted it): the subscription's OID comes
// from pg_stat_subscription, which lists every subscription, joined back by name. Subscription
// names are unique per database only, so on 13 two same-named subscriptions in different databases
// are conflated.
const subscriptions13SQL = `
SELECT w.subid, w.subname::text, d.datname::text, s.subenabled,
       EXTRACT(epoch FROM now() - w.last_msg_receipt_time)::float8,
       0::bigint, 0::bigint
FROM pg_stat_subscription w
JOIN pg_subscription s ON s.subname = w.subname
JOIN pg_database d ON d.oid = s.subdbid
WHERE w.relid IS NULL
ORDER BY w.subname`

func subscriptionsQuery(i ServerInfo) string {
	if i.VersionNum < 140000 {
		return subscriptions13SQL
	}
	worker := "w.relid IS NULL"
	switch {
	case i.VersionNum >= 170000:
		worker = "w.worker_type = 'apply'"
	case i.VersionNum >= 160000:
		worker = "w.relid IS NULL AND w.leader_pid IS NULL"
	}
	counters, join := "0::bigint, 0::bigint", ""
	if i.VersionNum >= 150000 {
		counters = "COALESCE(e.apply_error_count, 0), COALESCE(e.sync_error_count, 0)"
		join = "LEFT JOIN pg_stat_subscription_stats e ON e.subid = s.oid"
	}
	return fmt.Sprintf(subscriptionsSQL, worker, counters, join)
}

// pg_subscription_rel is per database: it is read in each subscription's own database.
const subscriptionRelSQL = `
SELECT srsubid, count(*) FILTER (WHERE srsubstate <> 'r')
FROM pg_subscription_rel GROUP BY srsubid`

func collectSubscriptions(ctx context.Context, t *Target, q querier, st *State) error {
	var subs []Subscription
	err := collectRows(ctx, q, subscriptionsQuery(st.Info), func(rows pgx.Rows) error {
		var s Subscription
		if err := rows.Scan(&s.OID, &s.Name, &s.Database, &s.Enabled, &s.LastMsgAgeSeconds, &s.ApplyErrors, &s.SyncErrors); err != nil {
			return err
		}
		subs = append(subs, s)
		return nil
	})
	if err != nil {
		return err
	}
	st.Subscriptions = subs
	var errs []error
	for _, db := range subscriptionDatabases(subs) {
		dq, err := t.databaseConn(ctx, db)
		if err != nil {
			errs = append(errs, fmt.Errorf("connect to subscription database %q: %w", db, err))
			continue
		}
		notReady := map[uint32]int64{}
		err = collectRows(ctx, dq, subscriptionRelSQL, func(rows pgx.Rows) error {
			var oid uint32
			var n int64
			if err := rows.Scan(&oid, &n); err != nil {
				return err
			}
			notReady[oid] = n
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("pg_subscription_rel in %q: %w", db, err))
			continue
		}
		for i := range st.Subscriptions {
			if s := &st.Subscriptions[i]; s.Database == db {
				n := notReady[s.OID]
				s.RelNotReady = &n
			}
		}
	}
	return errors.Join(errs...)
}

func subscriptionDatabases(subs []Subscription) []string {
	var dbs []string
	seen := map[string]bool{}
	for _, s := range subs {
		if !seen[s.Database] {
			seen[s.Database] = true
			dbs = append(dbs, s.Database)
		}
	}
	return dbs
}

func emitSubscriptions(e *emitter, subs []Subscription) {
	for _, s := range subs {
		l := []string{"subname", s.Name}
		e.add("pg_subscription_enabled", boolf(s.Enabled), l...)
		addOpt(e, "pg_subscription_last_msg_age_seconds", s.LastMsgAgeSeconds, l...)
		e.add("pg_subscription_apply_errors_total", float64(s.ApplyErrors), l...)
		e.add("pg_subscription_sync_errors_total", float64(s.SyncErrors), l...)
		addOpt(e, "pg_subscription_rel_not_ready", s.RelNotReady, l...)
	}
}
