package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pganalytics/pganalytics/deploy"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
	"github.com/pganalytics/pganalytics/server/store"
)

const benchBatch = 500

// benchPush is a push of benchBatch samples of distinct series, shaped like a collector's.
func benchPush(full bool) *api.PushRequest {
	now := time.Now().UTC()
	req := &api.PushRequest{CollectedAt: now}
	for i := range benchBatch {
		req.Metrics = append(req.Metrics, api.Sample{
			Name:  fmt.Sprintf("pg_replication_metric_%d", i%25),
			Value: float64(i),
			Labels: map[string]string{
				"instance": fmt.Sprintf("db%d:5432", i%4), "application_name": fmt.Sprintf("standby%d", i/100),
				"slot_name": fmt.Sprintf("slot%d", i%5),
			},
		})
	}
	if full {
		req.Status = &api.CollectorStatus{Version: "3.2.0", Instances: 4, IntervalSeconds: 10, CollectionsTotal: 100}
		req.Snapshot = &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{healthyCluster()}}
	}
	return req
}

// BenchmarkIngest measures Ingest of 500-sample pushes once their series are known (the steady
// state): samples only, and a full push with the collector's status and replication snapshot.
// Compare samples/s with BenchmarkRawCopy.
func BenchmarkIngest(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "samples"
		if full {
			name = "full_push"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := newStore(b)
			ctx := context.Background()
			c := mustCollector(b, s, "bench")
			req := benchPush(full)
			if _, err := s.Ingest(ctx, c.ID, req); err != nil { // creates the series and the partition
				b.Fatal(err)
			}
			for b.Loop() {
				if n, err := s.Ingest(ctx, c.ID, req); err != nil || n != benchBatch {
					b.Fatalf("Ingest = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkRawCopy is the floor: the same 500 rows (series already resolved) copied straight into
// the same samples table with one CopyFrom.
func BenchmarkRawCopy(b *testing.B) {
	ctx := context.Background()
	cp := rawCopier(b)
	for b.Loop() {
		cp.run(ctx)
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkIngestVsRawCopy alternates one Ingest and one raw CopyFrom of the same 500 rows into the
// same table, so that both see the same machine load, and reports their ratio.
func BenchmarkIngestVsRawCopy(b *testing.B) {
	ctx := context.Background()
	cp := rawCopier(b)
	s, c, req := cp.store, cp.collector, cp.req
	var ingestTime, copyTime time.Duration
	for b.Loop() {
		start := time.Now()
		if n, err := s.Ingest(ctx, c.ID, req); err != nil || n != benchBatch {
			b.Fatalf("Ingest = %d, %v", n, err)
		}
		mid := time.Now()
		cp.run(ctx)
		ingestTime += mid.Sub(start)
		copyTime += time.Since(mid)
	}
	samples := float64(b.N * benchBatch)
	b.ReportMetric(samples/ingestTime.Seconds(), "ingest-samples/s")
	b.ReportMetric(samples/copyTime.Seconds(), "copy-samples/s")
	b.ReportMetric(copyTime.Seconds()/ingestTime.Seconds(), "ingest/copy")
}

type copier struct {
	store     *store.Store
	collector api.Collector
	req       *api.PushRequest
	run       func(context.Context)
}

// rawCopier prepares a store whose collector has ingested benchPush once, and a function copying
// the same rows with their resolved series ids straight into samples.
func rawCopier(b *testing.B) copier {
	s, pool := newStore(b)
	ctx := context.Background()
	c := mustCollector(b, s, "bench")
	req := benchPush(false)
	if _, err := s.Ingest(ctx, c.ID, req); err != nil {
		b.Fatal(err)
	}
	data := make([][]any, benchBatch)
	var uuid pgtype.UUID
	if err := uuid.Scan(c.ID); err != nil {
		b.Fatal(err)
	}
	for i, m := range req.Metrics {
		var id int64
		err := pool.QueryRow(ctx, `SELECT id FROM series WHERE collector_id = $1 AND name = $2 AND labels = $3`,
			c.ID, m.Name, m.Labels).Scan(&id)
		if err != nil {
			b.Fatal(err)
		}
		data[i] = []any{req.CollectedAt, uuid, id, m.Value}
	}
	cols := []string{"timestamp", "collector_id", "series_id", "value"}
	return copier{store: s, collector: c, req: req, run: func(ctx context.Context) {
		n, err := pool.CopyFrom(ctx, pgx.Identifier{"samples"}, cols, pgx.CopyFromRows(data))
		if err != nil || n != benchBatch {
			b.Fatalf("CopyFrom = %d, %v", n, err)
		}
	}}
}

// BenchmarkEvaluateAlerts1000Collectors is one evaluation of the shipped alert rules over 1,000
// collectors, each with a snapshot (primary, standby, slot), its status history and 15 minutes of
// the history-based metrics at a 10 s interval (slot retained bytes and safe size, wraparound,
// archiver failures): Observe, Evaluate against the previous state, SaveAlerts.
func BenchmarkEvaluateAlerts1000Collectors(b *testing.B) {
	const collectors = 1000
	s, _ := newStore(b)
	ctx := context.Background()
	now := time.Now().UTC()
	rules, err := alerting.Parse("alerts.toml", deploy.AlertRules)
	if err != nil {
		b.Fatal(err)
	}
	for i := range collectors {
		c := mustCollector(b, s, fmt.Sprintf("c%04d", i))
		cl := healthyCluster()
		cl.SystemIdentifier = fmt.Sprintf("7%018d", i)
		req := &api.PushRequest{CollectedAt: now, Snapshot: &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{cl}},
			Status: &api.CollectorStatus{Version: "3.2.0", Instances: 2, IntervalSeconds: 10, CollectionsTotal: 100, BufferUtilization: float64(i%100) / 100}}
		for k := range 90 {
			at := now.Add(-time.Duration(k) * 10 * time.Second)
			slot := map[string]string{"instance": "db1:5432", "slot_name": "standby1", "slot_type": "physical"}
			req.Metrics = append(req.Metrics,
				api.Sample{Name: "pg_replication_slot_retained_bytes", Value: float64(1e6 - k*1000), Timestamp: at, Labels: slot},
				api.Sample{Name: "pg_replication_slot_safe_wal_size_bytes", Value: 5e8, Timestamp: at, Labels: slot},
				api.Sample{Name: "pg_database_xid_wraparound_pct", Value: 10, Timestamp: at, Labels: map[string]string{"instance": "db1:5432", "datname": "app"}},
				api.Sample{Name: "pg_archiver_failed_total", Value: 0, Timestamp: at, Labels: map[string]string{"instance": "db1:5432"}})
		}
		if _, err := s.Ingest(ctx, c.ID, req); err != nil {
			b.Fatal(err)
		}
	}
	var prev []alerting.Alert
	var observe, evaluate, save time.Duration
	for b.Loop() {
		t0 := time.Now()
		obs, err := s.Observe(ctx, now)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		next := alerting.Evaluate(rules, obs, prev, now)
		t2 := time.Now()
		if err := s.SaveAlerts(ctx, now, "bench", next); err != nil {
			b.Fatal(err)
		}
		observe, evaluate, save = observe+t1.Sub(t0), evaluate+t2.Sub(t1), save+time.Since(t2)
		prev = next
		b.ReportMetric(float64(len(obs)), "observations")
		b.ReportMetric(float64(len(next)), "alerts")
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(observe), "observe-ms")
	b.ReportMetric(per(evaluate), "evaluate-ms")
	b.ReportMetric(per(save), "save-ms")
}
