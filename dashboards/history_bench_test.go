package dashboards_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/dashboards"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/store"
)

// historyShape is what the generator writes: collectors × the catalog's metrics with real label
// sets, one sample per series every interval, for hours back from now.
type historyShape struct {
	collectors int
	hours      int
	interval   time.Duration
}

func benchShape(b *testing.B) historyShape {
	sh := historyShape{collectors: 20, hours: 24, interval: 10 * time.Second}
	for env, dst := range map[string]*int{"PGANALYTICS_BENCH_HOURS": &sh.hours, "PGANALYTICS_BENCH_COLLECTORS": &sh.collectors} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive integer", env, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("PGANALYTICS_BENCH_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PGANALYTICS_BENCH_DAYS=%q: want a positive integer", v)
		}
		sh.hours = 24 * n
	}
	return sh
}

// seriesOf is one collector's series: every catalog metric with the label sets a real primary
// with two standbys, two slots, a subscription and three databases has.
func seriesOf() []map[string]string {
	var out []map[string]string
	add := func(name string, labels map[string]string) {
		l := map[string]string{"__name__": name}
		for k, v := range labels {
			l[k] = v
		}
		out = append(out, l)
	}
	instances := []string{"db1:5432", "db2:5432"}
	for _, m := range catalog {
		switch {
		case strings.HasPrefix(m, "pganalytics_collector_"):
			add(m, nil)
		case strings.HasPrefix(m, "pg_replication_slot_"):
			for _, slot := range []string{"standby1", "old_backup"} {
				add(m, map[string]string{"instance": instances[0], "slot_name": slot, "slot_type": "physical"})
			}
		case strings.HasPrefix(m, "pg_replication_") && m != "pg_replication_connected_standbys":
			for _, app := range []string{"standby1", "standby2"} {
				add(m, map[string]string{"instance": instances[0], "application_name": app, "client_addr": "10.0.0.2"})
			}
		case strings.HasPrefix(m, "pg_subscription_"):
			add(m, map[string]string{"instance": instances[1], "subscription": "orders_sub", "datname": "orders"})
		case strings.HasPrefix(m, "pg_database_"):
			for _, db := range []string{"postgres", "orders", "billing"} {
				add(m, map[string]string{"instance": instances[0], "datname": db})
			}
		case strings.HasPrefix(m, "pg_wal_receiver_"), strings.HasPrefix(m, "pg_standby_"), m == "pg_recovery_conflicts_total":
			add(m, map[string]string{"instance": instances[1]})
		default:
			for _, in := range instances {
				add(m, map[string]string{"instance": in})
			}
		}
	}
	return out
}

// fillHistory writes the shape with COPY and returns the collectors' ids.
func fillHistory(b *testing.B, ctx context.Context, pool *pgxpool.Pool, sh historyShape, now time.Time) []string {
	b.Helper()
	start := now.Add(-time.Duration(sh.hours) * time.Hour).Truncate(sh.interval)
	for d := start.UTC().Truncate(24 * time.Hour); !d.After(now.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS samples_p%s PARTITION OF samples FOR VALUES FROM ('%s') TO ('%s')`,
			d.Format("20060102"), d.Format(time.RFC3339), d.Add(24*time.Hour).Format(time.RFC3339))
		if _, err := pool.Exec(ctx, ddl); err != nil {
			b.Fatal(err)
		}
	}
	shape := seriesOf()
	var ids []string
	var rows int64
	began := time.Now()
	for c := range sh.collectors {
		var id string
		if err := pool.QueryRow(ctx, `INSERT INTO collectors (name, hostname, token_id, last_push_at, interval_seconds, instances)
			VALUES ($1, $1, 'bench', now(), 10, 2) RETURNING id::text`, fmt.Sprintf("bench-%02d", c)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
		seriesIDs := make([]int64, len(shape))
		for i, l := range shape {
			name := l["__name__"]
			labels := map[string]string{}
			for k, v := range l {
				if k != "__name__" {
					labels[k] = v
				}
			}
			if err := pool.QueryRow(ctx, `INSERT INTO series (collector_id, name, labels) VALUES ($1, $2, $3) RETURNING id`,
				id, name, labels).Scan(&seriesIDs[i]); err != nil {
				b.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(uint64(c), 42))
		src := &historySource{start: start, end: now, step: sh.interval, collector: id, series: seriesIDs, shape: shape, rng: rng}
		n, err := pool.CopyFrom(ctx, pgx.Identifier{"samples"}, []string{"timestamp", "collector_id", "series_id", "value"}, src)
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	// Two API servers' per-minute reports, for the API and security dashboard.
	if _, err := pool.Exec(ctx, `
		INSERT INTO request_stats (server, minute, requests, rate_limited, auth_failures, server_errors, db_errors, duration_p95_ms)
		SELECT s, m, 600 + (random() * 100)::int, (random() * 3)::int, (random() * 2)::int, 0, 0, 5 + random() * 10
		FROM unnest(ARRAY['api-1', 'api-2']) s, generate_series(date_trunc('minute', $1::timestamptz), $2::timestamptz, interval '1 minute') m`,
		start, now); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var size int64
	_ = pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size)
	b.Logf("history: %d collectors × %d series × %d h every %s = %d samples in %s (%.0f rows/s), store %.0f MiB",
		sh.collectors, len(shape), sh.hours, sh.interval, rows, time.Since(began).Round(time.Second),
		float64(rows)/time.Since(began).Seconds(), float64(size)/(1<<20))
	return ids
}

// historySource yields one collector's samples in time order: counters grow, gauges wander.
type historySource struct {
	start, end time.Time
	step       time.Duration
	collector  string
	series     []int64
	shape      []map[string]string
	rng        *rand.Rand

	at    time.Time
	i     int
	value []float64
	row   []any
}

func (s *historySource) Next() bool {
	if s.value == nil {
		s.at, s.value = s.start, make([]float64, len(s.series))
	}
	if s.i == len(s.series) {
		s.i, s.at = 0, s.at.Add(s.step)
	}
	if s.at.After(s.end) {
		return false
	}
	name := s.shape[s.i]["__name__"]
	v := &s.value[s.i]
	switch {
	case strings.HasSuffix(name, "_total"), name == "pg_wal_lsn_bytes":
		*v += float64(s.rng.IntN(1 << 16))
	case name == "pg_up", name == "pg_replication_streaming", name == "pg_replication_slot_active", name == "pg_wal_receiver_connected":
		*v = 1
		if s.rng.IntN(2000) == 0 {
			*v = 0
		}
	default:
		*v = math.Abs(*v + s.rng.NormFloat64()*1000)
	}
	s.row = []any{s.at, s.collector, s.series[s.i], *v}
	s.i++
	return true
}

func (s *historySource) Values() ([]any, error) { return s.row, nil }
func (s *historySource) Err() error             { return nil }

// BenchmarkDashboardHistory fills a store with PGANALYTICS_BENCH_HOURS (24; or PGANALYTICS_BENCH_DAYS) hours of
// PGANALYTICS_BENCH_COLLECTORS (20) collectors at a 10 s interval (every catalog metric, real label
// sets, written with COPY), then times every dashboard panel query, expanded as Grafana expands it,
// over the last 6 h and the whole range with every collector selected, 5 runs each (fewer past 15 s
// in all), and the API's
// history query (GET /api/v1/metrics of one series over the range). It prints each query's median
// and worst and reports the slowest query's median per range.
func BenchmarkDashboardHistory(b *testing.B) {
	sh := benchShape(b)
	c := pgtest.Start(b, pgtest.WithConfig("shared_buffers", "256MB"), pgtest.WithConfig("max_wal_size", "4GB"),
		pgtest.WithConfig("work_mem", "16MB"))
	dsn := c.DSN("postgres")
	ctx := b.Context()
	if _, err := store.Migrate(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	now := time.Now().UTC()
	ids := fillHistory(b, ctx, pool, sh, now)
	ds, err := dashboards.Load()
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// The rollups, as the server keeps them: here the backfill of the whole history.
	began := time.Now()
	for {
		p, err := st.MaintainRollups(ctx, now)
		if err != nil {
			b.Fatal(err)
		}
		if !p.Behind {
			b.Logf("rollups: backfilled %d h in %s (minutes until %s)", sh.hours, time.Since(began).Round(time.Second), p.MinutesUntil.Format(time.TimeOnly))
			break
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}

	const runs = 5
	ranges := []time.Duration{6 * time.Hour, time.Duration(sh.hours) * time.Hour}
	if sh.hours <= 6 {
		ranges = ranges[1:]
	}
	for b.Loop() {
		for _, rng := range ranges {
			type timing struct {
				where         string
				median, worst time.Duration
			}
			var timings []timing
			var skipped []string
			measure := func(where string, fn func() error) {
				var ds []time.Duration
				var spent time.Duration
				for len(ds) < runs && (len(ds) == 0 || spent < 15*time.Second) { // a very slow query runs fewer times
					t0 := time.Now()
					if err := fn(); err != nil {
						b.Fatalf("%s: %v", where, err)
					}
					ds = append(ds, time.Since(t0))
					spent += ds[len(ds)-1]
				}
				slices.Sort(ds)
				timings = append(timings, timing{where, ds[len(ds)/2], ds[len(ds)-1]})
			}
			for _, d := range ds {
				// Grafana's $__interval: the range over the panel's ~1,000 points, at least 1 s.
				interval := max(time.Second, (rng / 1000).Truncate(time.Second))
				vars := dashboards.Vars{Interval: interval, From: now.Add(-rng), To: now, Values: map[string][]string{}, Multi: map[string]bool{}}
				for _, v := range d.Variables {
					vars.Multi[v.Name] = v.Multi || v.IncludeAll
				}
			queries:
				for _, q := range d.Queries {
					for _, ref := range dashboards.VariableRefs(q.SQL) {
						if vals, ok := vars.Values[ref]; ok && len(vals) == 0 {
							skipped = append(skipped, d.File+" "+q.Where+" (no $"+ref+")")
							continue queries // Grafana shows "None" for the variable and nothing in the panel
						}
					}
					sql, err := dashboards.Expand(q.SQL, vars)
					if err != nil {
						b.Fatalf("%s %s: %v", d.File, q.Where, err)
					}
					if q.Variable != "" {
						vals, err := columnValues(ctx, pool, sql)
						if err != nil {
							b.Fatalf("%s %s: %v", d.File, q.Where, err)
						}
						vars.Values[q.Variable] = vals
					}
					measure(d.File+" "+q.Where, func() error {
						_, err := columnValues(ctx, pool, sql)
						return err
					})
				}
			}
			measure("GET /api/v1/metrics (one series over the range)", func() error {
				_, err := st.QueryMetrics(ctx, store.MetricsQuery{CollectorID: ids[0], Name: "pg_replication_replay_lag_bytes",
					Since: now.Add(-rng), Until: now, Limit: 10000})
				return err
			})
			sort.Slice(timings, func(i, j int) bool { return timings[i].median > timings[j].median })
			var over int
			for _, t := range timings {
				if t.median > 100*time.Millisecond {
					over++
				}
			}
			fmt.Printf("range %s: %d queries, %d with a median over 100 ms; slowest first:\n", rng, len(timings), over)
			if len(skipped) > 0 {
				fmt.Printf("  not run (a variable without values, as in Grafana): %s\n", strings.Join(skipped, "; "))
			}
			for i, t := range timings {
				if i == 15 {
					fmt.Printf("  … %d more\n", len(timings)-i)
					break
				}
				fmt.Printf("  %9.1f ms median  %9.1f ms worst  %s\n", ms(t.median), ms(t.worst), t.where)
			}
			b.ReportMetric(ms(timings[0].median), fmt.Sprintf("slowest-ms/%dh", int(rng.Hours())))
			b.ReportMetric(float64(over), fmt.Sprintf("over-100ms/%dh", int(rng.Hours())))
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// columnValues runs sql and returns a variable's values: its __value column, else its first, as text.
func columnValues(ctx context.Context, pool *pgxpool.Pool, sql string) ([]string, error) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	col := 0
	for i, f := range rows.FieldDescriptions() {
		if f.Name == "__value" {
			col = i
		}
	}
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, err
		}
		if len(v) > col {
			out = append(out, fmt.Sprint(v[col]))
		}
	}
	return out, rows.Err()
}
