package dashboards_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/dashboards"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/store"
)

// readerSQL creates the Grafana datasource's role (docs/dashboards.md); the tests query as that role.
var readerSQL = filepath.Join("..", "deploy", "grafana", "grafana_reader.sql")

const readerRole = "grafana_reader"

// TestPanelQueries runs every variable and panel query, expanded as Grafana would, as the read-only
// Grafana role against a metrics store migrated with the real migrations and filled through the
// real ingest path. A renamed column, a missing grant or a panel that stays empty fails it.
func TestPanelQueries(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).CreateDB(t, "dashboards")
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	fx := seedStore(ctx, t, st, time.Now())

	ddl, err := os.ReadFile(readerSQL)
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(ctx, t, dsn, "")
	for range 2 { // the script is documented as idempotent
		if _, err := admin.Exec(ctx, string(ddl)); err != nil {
			t.Fatalf("%s: %v", readerSQL, err)
		}
	}
	reader := connect(ctx, t, dsn, readerRole)

	t.Run("least privilege", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT count(*) FROM users",
			"SELECT count(*) FROM refresh_tokens",
			"SELECT count(token_id) FROM collectors",
			"SELECT sum(value) FROM samples", // its times and collectors only, for collector_sample_counts()
			"CREATE TABLE grafana_was_here ()",
		} {
			if _, err := reader.Exec(ctx, sql); !isDenied(err) {
				t.Errorf("%s as %s: err = %v, want it refused", sql, readerRole, err)
			}
		}
	})

	now := time.Now()
	vars := dashboards.Vars{
		Interval: time.Minute,
		Values: map[string][]string{
			"collector_id": fx.collectorIDs,
			"instance":     fx.instances,
			"server":       fx.servers,
		},
		From: now.Add(-time.Hour),
		To:   now,
	}
	for _, d := range loadDashboards(t) {
		vars.Multi = map[string]bool{}
		for _, v := range d.Templating.List {
			vars.Multi[v.Name] = v.Multi || v.IncludeAll
		}
		t.Run(d.file, func(t *testing.T) {
			for _, q := range d.queries() {
				t.Run(q.where, func(t *testing.T) {
					sql, err := dashboards.Expand(q.sql, vars)
					if err != nil {
						t.Fatal(err)
					}
					res, err := run(ctx, reader, sql)
					if err != nil {
						t.Fatalf("%v\n%s", err, sql)
					}
					if len(res.rows) == 0 {
						t.Fatalf("no rows from a store holding every catalog metric\n%s", sql)
					}
					switch {
					case q.format == "time_series":
						checkTimeSeries(t, res)
					case strings.HasPrefix(q.where, "variable "):
						checkVariable(t, strings.TrimPrefix(q.where, "variable "), res, vars)
					}
				})
			}
		})
	}
}

// fixture is what seedStore stored.
type fixture struct {
	collectorIDs, instances, servers []string
}

// seedStore registers two collectors, one watching a primary (with a physical standby slot and a
// logical publication slot) and one watching its standby (also a logical subscriber), and pushes
// every catalog metric for three minutes, every 15 s, through store.Ingest, with their status. It
// also records audit entries and request statistics as two API servers would.
func seedStore(ctx context.Context, t *testing.T, st *store.Store, now time.Time) fixture {
	t.Helper()
	var fx fixture
	type watched struct {
		collector, instance string
		samples             func(e *sampleSet)
	}
	for i, w := range []watched{
		{"collector-primary", "db1:5432", primarySamples},
		{"collector-standby", "db2:5432", standbySamples},
	} {
		c, err := st.CreateCollector(ctx, w.collector, w.collector+".example", fmt.Sprintf("jti-%d", i))
		if err != nil {
			t.Fatalf("create collector: %v", err)
		}
		fx.collectorIDs = append(fx.collectorIDs, c.ID)
		fx.instances = append(fx.instances, w.instance)
		const pushes = 12
		for k := range pushes {
			at := now.Add(-time.Duration(pushes-k) * 15 * time.Second).UTC()
			e := &sampleSet{instance: w.instance, at: at, step: float64(k + 1)}
			commonSamples(e)
			w.samples(e)
			req := &api.PushRequest{
				CollectedAt: at,
				Metrics:     e.out,
				Status: &api.CollectorStatus{
					Version: "test", Instances: 1, IntervalSeconds: 15, CycleSeconds: 0.2,
					BufferUtilization: 0.1, CollectionsTotal: int64(k + 1), CollectionFailuresTotal: int64(k / 4),
				},
			}
			if n, err := st.Ingest(ctx, c.ID, req); err != nil || n != len(e.out) {
				t.Fatalf("ingest: accepted %d of %d: %v", n, len(e.out), err)
			}
		}
	}

	minute := now.Add(-time.Minute)
	for _, a := range []api.AuditEntry{
		{Actor: "user:admin", Action: "login", Target: "user:admin", IP: "10.0.0.5", Success: true},
		{Actor: "anonymous", Action: "login_failed", Target: "user:admin", IP: "10.0.0.66"},
		{Actor: "user:admin", Action: "refresh_reused", Target: "family:f1", IP: "10.0.0.66"},
		{Actor: "anonymous", Action: "register_failed", IP: "10.0.0.66", Detail: json.RawMessage(`{"reason":"invalid registration secret"}`)},
		{Actor: "collector:c1", Action: "register", Target: "collector:collector-primary", IP: "10.0.0.7", Success: true},
		{Actor: "user:viewer", Action: "role_denied", Target: "GET /api/v1/audit", IP: "10.0.0.8"},
		{Actor: "user:admin", Action: "config_changed", Target: "collector:c1", IP: "10.0.0.5", Success: true},
	} {
		a.At = minute
		if err := st.Audit(ctx, a); err != nil {
			t.Fatalf("audit: %v", err)
		}
	}
	fx.servers = []string{"api-1", "api-2"}
	for _, server := range fx.servers {
		for m := 1; m <= 3; m++ {
			err := st.RecordRequestStats(ctx, store.RequestStats{
				Server: server, Minute: now.Add(-time.Duration(m) * time.Minute),
				Requests: 600, RateLimited: 3, AuthFailures: 1, ServerErrors: 1, DBErrors: 0, DurationP95Ms: 42,
			})
			if err != nil {
				t.Fatalf("record request stats: %v", err)
			}
		}
	}
	return fx
}

// sampleSet builds one push's samples for one instance, labelled as the collector labels them.
// Counters (…_total, pg_wal_lsn_bytes) grow with step; gauges hold still.
type sampleSet struct {
	instance string
	at       time.Time
	step     float64
	out      []api.Sample
}

func (e *sampleSet) add(name string, kv ...string) {
	labels := map[string]string{}
	if !strings.HasPrefix(name, "pganalytics_") {
		labels["instance"] = e.instance
	}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	v := 1.0
	if strings.HasSuffix(name, "_total") || name == "pg_wal_lsn_bytes" {
		v = 1000 * e.step
	}
	e.out = append(e.out, api.Sample{Name: name, Value: v, Labels: labels, Timestamp: e.at})
}

func commonSamples(e *sampleSet) {
	for _, n := range []string{"pg_up", "pg_in_recovery", "pg_timeline_id", "pg_wal_lsn_bytes",
		"pg_wal_bytes_total", "pg_wal_records_total", "pg_wal_fpi_total", "pg_wal_buffers_full_total",
		"pg_wal_directory_bytes", "pg_wal_segments", "pg_archiver_archived_total", "pg_archiver_failed_total",
		"pg_archiver_last_archived_age_seconds", "pg_archiver_pending_files",
		"pganalytics_collector_cycle_seconds", "pganalytics_collector_collection_failures_total",
		"pganalytics_collector_buffer_utilization_ratio", "pganalytics_collector_buffer_dropped_total"} {
		e.add(n)
	}
	for _, db := range []string{"postgres", "app"} {
		for _, n := range []string{"pg_database_xid_age", "pg_database_mxid_age", "pg_database_xid_wraparound_pct"} {
			e.add(n, "datname", db)
		}
	}
}

func primarySamples(e *sampleSet) {
	e.add("pg_replication_connected_standbys")
	standby := []string{"application_name", "standby1", "client_addr", "10.0.0.2", "state", "streaming",
		"sync_state", "async", "slot_name", "standby1"}
	for _, n := range []string{"pg_replication_streaming", "pg_replication_is_sync",
		"pg_replication_sent_lag_bytes", "pg_replication_write_lag_bytes", "pg_replication_flush_lag_bytes",
		"pg_replication_replay_lag_bytes", "pg_replication_write_lag_seconds", "pg_replication_flush_lag_seconds",
		"pg_replication_replay_lag_seconds", "pg_replication_reply_age_seconds", "pg_replication_backend_xmin_age"} {
		e.add(n, standby...)
	}
	slots := [][]string{
		{"slot_name", "standby1", "slot_type", "physical", "plugin", "", "database", ""},
		{"slot_name", "sub1", "slot_type", "logical", "plugin", "pgoutput", "database", "app"},
	}
	for _, slot := range slots {
		for _, n := range []string{"pg_replication_slot_active", "pg_replication_slot_retained_bytes",
			"pg_replication_slot_confirmed_flush_lag_bytes", "pg_replication_slot_xmin_age",
			"pg_replication_slot_catalog_xmin_age", "pg_replication_slot_safe_wal_size_bytes",
			"pg_replication_slot_wal_status", "pg_replication_slot_conflicting",
			"pg_replication_slot_inactive_seconds"} {
			e.add(n, slot...)
		}
	}
	for _, n := range []string{"pg_replication_slot_spill_bytes_total", "pg_replication_slot_spill_txns_total",
		"pg_replication_slot_stream_bytes_total", "pg_replication_slot_stream_txns_total",
		"pg_replication_slot_total_bytes_total"} {
		e.add(n, slots[1]...)
	}
}

func standbySamples(e *sampleSet) {
	for _, n := range []string{"pg_wal_receiver_connected", "pg_wal_receiver_last_msg_age_seconds",
		"pg_wal_receiver_received_timeline", "pg_standby_receive_replay_lag_bytes",
		"pg_standby_replay_delay_seconds", "pg_standby_last_replay_age_seconds", "pg_standby_replay_paused"} {
		e.add(n)
	}
	for _, ct := range []string{"lock", "snapshot"} {
		e.add("pg_recovery_conflicts_total", "datname", "app", "conflict_type", ct)
	}
	for _, n := range []string{"pg_subscription_enabled", "pg_subscription_last_msg_age_seconds",
		"pg_subscription_apply_errors_total", "pg_subscription_sync_errors_total", "pg_subscription_rel_not_ready"} {
		e.add(n, "subname", "sub1")
	}
}

func connect(ctx context.Context, t *testing.T, dsn, user string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		cfg.User = user
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func isDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "25006") // insufficient_privilege, read_only_sql_transaction
}

// result is a query's columns and rows as pgx decodes them.
type result struct {
	fields []pgconn.FieldDescription
	rows   [][]any
}

func (r result) column(name string) int {
	return slices.IndexFunc(r.fields, func(f pgconn.FieldDescription) bool { return f.Name == name })
}

// run queries with the simple protocol, as Grafana sends raw SQL without parameters.
func run(ctx context.Context, conn *pgx.Conn, sql string) (result, error) {
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	var res result
	res.fields = slices.Clone(rows.FieldDescriptions())
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return result{}, err
		}
		res.rows = append(res.rows, vals)
	}
	return res, rows.Err()
}

var numericOIDs = []uint32{pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID}

// checkTimeSeries applies Grafana's rules for the time_series format: a "time" column (epoch or
// timestamp) in ascending order, an optional text "metric" column naming the series, and numeric
// value columns.
func checkTimeSeries(t *testing.T, res result) {
	t.Helper()
	ti := res.column("time")
	if ti < 0 {
		t.Fatalf("time_series query has no time column: %v", fieldNames(res))
	}
	if mi := res.column("metric"); mi >= 0 && res.fields[mi].DataTypeOID != pgtype.TextOID {
		t.Errorf("metric column has type oid %d, want text", res.fields[mi].DataTypeOID)
	}
	values := 0
	for i, f := range res.fields {
		if i == ti || f.Name == "metric" {
			continue
		}
		if !slices.Contains(numericOIDs, f.DataTypeOID) {
			t.Errorf("value column %q has type oid %d, want a number", f.Name, f.DataTypeOID)
		}
		values++
	}
	if values == 0 {
		t.Error("time_series query has no value column")
	}
	prev := -1.0
	for _, row := range res.rows {
		sec, err := epochSeconds(row[ti])
		if err != nil {
			t.Fatal(err)
		}
		if sec < prev {
			t.Fatalf("rows not ordered by time (%v after %v): Grafana needs ORDER BY time", sec, prev)
		}
		prev = sec
	}
}

func epochSeconds(v any) (float64, error) {
	switch x := v.(type) {
	case time.Time:
		return float64(x.UnixNano()) / 1e9, nil
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case pgtype.Numeric:
		f, err := x.Float64Value()
		return f.Float64, err
	}
	return 0, fmt.Errorf("time column holds %T, want a timestamp or epoch number", v)
}

// checkVariable compares a variable query's values with what the fixture stored.
func checkVariable(t *testing.T, name string, res result, vars dashboards.Vars) {
	t.Helper()
	col := res.column("__value")
	if col < 0 {
		col = 0
	}
	var got []string
	for _, row := range res.rows {
		got = append(got, fmt.Sprint(row[col]))
	}
	want := slices.Clone(vars.Values[name])
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("variable %s offers %v, want %v", name, got, want)
	}
}

func fieldNames(res result) []string {
	out := make([]string, len(res.fields))
	for i, f := range res.fields {
		out[i] = f.Name
	}
	return out
}
