package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// The deployment plan's validation SQL, verbatim; '...' stands for the collector id.
const (
	seedStagingCount = `SELECT COUNT(*) FROM metrics WHERE collector_id = '...';`
	seedProdCount    = `SELECT COUNT(*) FROM metrics
WHERE collector_id = '...'
AND timestamp > now() - interval '5 minutes';`
	seedCollectorsReporting = `-- Verify collectors reporting
SELECT DISTINCT collector_id, COUNT(*) as metrics
FROM metrics
WHERE timestamp > now() - interval '10 minutes'
GROUP BY collector_id;`
	seedMetricsVolume = `-- Verify metrics volume
SELECT
  DATE_TRUNC('minute', timestamp) as minute,
  COUNT(*) as metrics
FROM metrics
WHERE timestamp > now() - interval '1 hour'
GROUP BY minute
ORDER BY minute DESC;`
)

func seedSQL(sql, collectorID string) string {
	return strings.ReplaceAll(sql, "'...'", "'"+collectorID+"'")
}

func samplePush(now time.Time) *api.PushRequest {
	inst1 := map[string]string{"instance": "db1:5432"}
	return &api.PushRequest{
		CollectedAt: now,
		Metrics: []api.Sample{
			{Name: "pg_up", Value: 1, Labels: inst1},
			{Name: "pg_up", Value: 0, Labels: map[string]string{"instance": "db2:5432"}},
			{Name: "pg_replication_replay_lag_bytes", Value: 1024, Timestamp: now.Add(-30 * time.Second),
				Labels: map[string]string{"instance": "db1:5432", "application_name": "standby1"}},
			{Name: "pg_wal_lsn_bytes", Value: 123456, Labels: inst1},
		},
		Status: &api.CollectorStatus{Version: "3.2.0", Instances: 2, IntervalSeconds: 10, BufferUtilization: 0.25,
			CollectionsTotal: 10},
		Snapshot: &api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{{
			SystemIdentifier: "7345",
			Instances:        []api.Instance{{Name: "db1", Address: "db1:5432", Up: true, Role: "primary", ServerVersion: 160012}},
		}}},
	}
}

func TestIngestAndSeedSQL(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	c1 := mustCollector(t, s, "staging-collector-01")
	c2 := mustCollector(t, s, "staging-collector-02")
	now := time.Now().UTC().Truncate(time.Microsecond)

	n, err := s.Ingest(ctx, c1.ID, samplePush(now))
	if err != nil || n != 4 {
		t.Fatalf("Ingest = %d, %v; want 4", n, err)
	}
	if n, err := s.Ingest(ctx, c2.ID, &api.PushRequest{CollectedAt: now, Metrics: []api.Sample{{Name: "pg_up", Value: 1}}}); err != nil || n != 1 {
		t.Fatalf("Ingest c2 = %d, %v", n, err)
	}

	t.Run("seed SQL", func(t *testing.T) {
		for _, tc := range []struct {
			name, sql string
			want      int64
		}{
			{"staging step 5", seedStagingCount, 4},
			{"production step 5", seedProdCount, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := queryInt(t, pool, seedSQL(tc.sql, c1.ID)); got != tc.want {
					t.Fatalf("count = %d, want %d", got, tc.want)
				}
			})
		}
		t.Run("collectors reporting", func(t *testing.T) {
			rows, err := pool.Query(ctx, seedCollectorsReporting)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for rows.Next() {
				var (
					id string
					n  int64
				)
				if err := rows.Scan(&id, &n); err != nil {
					t.Fatal(err)
				}
				got[id] = n
			}
			if rows.Err() != nil || len(got) != 2 || got[c1.ID] != 4 || got[c2.ID] != 1 {
				t.Fatalf("collectors reporting = %v, %v", got, rows.Err())
			}
		})
		t.Run("metrics volume", func(t *testing.T) {
			rows, err := pool.Query(ctx, seedMetricsVolume)
			if err != nil {
				t.Fatal(err)
			}
			var (
				total int64
				prev  time.Time
			)
			for rows.Next() {
				var (
					minute time.Time
					n      int64
				)
				if err := rows.Scan(&minute, &n); err != nil {
					t.Fatal(err)
				}
				if !prev.IsZero() && !minute.Before(prev) {
					t.Fatalf("minutes not descending: %v after %v", minute, prev)
				}
				prev, total = minute, total+n
			}
			if rows.Err() != nil || total != 5 {
				t.Fatalf("metrics in the last hour = %d, %v; want 5", total, rows.Err())
			}
		})
	})

	t.Run("metrics view", func(t *testing.T) {
		var (
			name, collector, instance string
			labels                    map[string]string
			value                     float64
			ts                        time.Time
		)
		err := pool.QueryRow(ctx, `SELECT timestamp, collector_id, name, labels, instance, value FROM metrics
			WHERE name = 'pg_replication_replay_lag_bytes'`).Scan(&ts, &collector, &name, &labels, &instance, &value)
		if err != nil {
			t.Fatal(err)
		}
		if collector != c1.ID || instance != "db1:5432" || labels["application_name"] != "standby1" || value != 1024 ||
			!ts.Equal(now.Add(-30*time.Second)) {
			t.Fatalf("row: %v %s %s %v %s %v", ts, collector, name, labels, instance, value)
		}
	})

	t.Run("collector status", func(t *testing.T) {
		got, err := s.Collector(ctx, c1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.CollectorActive || got.LastPushAt == nil || got.Version != "3.2.0" || got.Instances != 2 ||
			got.BufferUtilization != 0.25 || got.CollectionsTotal != 10 || got.IntervalSeconds != 10 {
			t.Fatalf("collector after push: %+v", got)
		}
		// A push without status keeps the last one.
		if _, err := s.Ingest(ctx, c1.ID, &api.PushRequest{CollectedAt: now}); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Collector(ctx, c1.ID); again.Version != "3.2.0" || again.BufferUtilization != 0.25 {
			t.Fatalf("status lost: %+v", again)
		}
	})

	t.Run("query", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    store.MetricsQuery
			want int
			err  error
		}{
			{"collector", store.MetricsQuery{CollectorID: c1.ID}, 4, nil},
			{"everything", store.MetricsQuery{}, 5, nil},
			{"name", store.MetricsQuery{CollectorID: c1.ID, Name: "pg_up"}, 2, nil},
			{"since", store.MetricsQuery{CollectorID: c1.ID, Since: now.Add(-time.Second)}, 3, nil},
			{"until", store.MetricsQuery{CollectorID: c1.ID, Until: now.Add(-time.Second)}, 1, nil},
			{"limit", store.MetricsQuery{Limit: 2}, 2, nil},
			{"unknown collector", store.MetricsQuery{CollectorID: unknownID}, 0, nil},
			{"unknown name", store.MetricsQuery{Name: "nope"}, 0, nil},
			{"malformed collector", store.MetricsQuery{CollectorID: "'; DROP TABLE samples; --"}, 0, store.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.QueryMetrics(ctx, tc.q)
				wantErr(t, err, tc.err)
				if len(got) != tc.want {
					t.Fatalf("%d samples, want %d: %+v", len(got), tc.want, got)
				}
				for i := 1; i < len(got); i++ {
					if got[i].Timestamp.After(got[i-1].Timestamp) {
						t.Fatalf("not newest first: %+v", got)
					}
				}
			})
		}
		got, _ := s.QueryMetrics(ctx, store.MetricsQuery{CollectorID: c1.ID, Name: "pg_replication_replay_lag_bytes"})
		want := api.MetricSample{Timestamp: now.Add(-30 * time.Second), CollectorID: c1.ID, Name: "pg_replication_replay_lag_bytes",
			Labels: map[string]string{"instance": "db1:5432", "application_name": "standby1"}, Value: 1024}
		if len(got) != 1 || !got[0].Timestamp.Equal(want.Timestamp) || got[0].CollectorID != want.CollectorID ||
			got[0].Value != want.Value || fmt.Sprint(got[0].Labels) != fmt.Sprint(want.Labels) {
			t.Fatalf("sample = %+v, want %+v", got, want)
		}
	})

	t.Run("series are reused", func(t *testing.T) {
		before := queryInt(t, pool, `SELECT count(*) FROM series`)
		// Same series, labels given in another order through a fresh map, and a second server (cold cache).
		other := openStore(t, pool.Config().ConnString(), store.Options{})
		for _, st := range []*store.Store{s, other} {
			if n, err := st.Ingest(ctx, c1.ID, samplePush(now.Add(time.Second))); err != nil || n != 4 {
				t.Fatalf("re-ingest = %d, %v", n, err)
			}
		}
		if after := queryInt(t, pool, `SELECT count(*) FROM series`); after != before {
			t.Fatalf("series %d -> %d", before, after)
		}
		if got := queryInt(t, pool, seedSQL(seedStagingCount, c1.ID)); got != 12 {
			t.Fatalf("samples of c1 = %d, want 12", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		gone := mustCollector(t, s, "gone")
		wantErr(t, s.DeleteCollector(ctx, gone.ID), nil)
		samplesBefore := queryInt(t, pool, `SELECT count(*) FROM samples`)
		seriesBefore := queryInt(t, pool, `SELECT count(*) FROM series`)
		for _, tc := range []struct {
			name, id string
			req      *api.PushRequest
			want     error
		}{
			{"unknown collector", unknownID, samplePush(now), store.ErrNotFound},
			{"malformed collector", "not-a-uuid", samplePush(now), store.ErrNotFound},
			{"deregistered collector", gone.ID, samplePush(now), store.ErrNotFound},
			{"nil push", c1.ID, nil, store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n, err := s.Ingest(ctx, tc.id, tc.req)
				wantErr(t, err, tc.want)
				if n != 0 {
					t.Fatalf("accepted %d", n)
				}
			})
		}
		if queryInt(t, pool, `SELECT count(*) FROM samples`) != samplesBefore || queryInt(t, pool, `SELECT count(*) FROM series`) != seriesBefore {
			t.Fatal("a refused push stored something")
		}
	})
}

func TestIngestTimestamps(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	c := mustCollector(t, s, "c")
	now := time.Now().UTC()
	for _, tc := range []struct {
		name      string
		ts        time.Time
		collected time.Time
		accepted  int
	}{
		{"now", now, now, 1},
		{"zero takes collected_at", time.Time{}, now.Add(-time.Minute), 1},
		{"zero collected_at too takes the server's time", time.Time{}, time.Time{}, 1},
		{"spooled two days ago", now.Add(-48 * time.Hour), now, 1},
		{"spooled 29 days ago", now.Add(-29 * 24 * time.Hour), now, 1},
		{"older than retention", now.Add(-31 * 24 * time.Hour), now, 0},
		{"an hour ahead", now.Add(time.Hour), now, 1},
		{"two days ahead", now.Add(48 * time.Hour), now, 0},
		{"year 9999", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), now, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := queryInt(t, pool, `SELECT count(*) FROM samples`)
			n, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: tc.collected,
				Metrics: []api.Sample{{Name: "pg_up", Value: 1, Timestamp: tc.ts}}})
			if err != nil || n != tc.accepted {
				t.Fatalf("Ingest = %d, %v; want %d", n, err, tc.accepted)
			}
			if got := queryInt(t, pool, `SELECT count(*) FROM samples`) - before; got != int64(tc.accepted) {
				t.Fatalf("stored %d, accepted %d", got, tc.accepted)
			}
			if tc.accepted == 1 && !tc.ts.IsZero() {
				part := "samples_p" + tc.ts.UTC().Format("20060102")
				if queryInt(t, pool, `SELECT count(*) FROM pg_class WHERE relname = $1`, part) != 1 {
					t.Fatalf("partition %s not created", part)
				}
			}
		})
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM samples WHERE timestamp = $1`, now.Add(-time.Minute).Truncate(time.Microsecond)); n != 1 {
		t.Fatalf("zero timestamp did not take collected_at: %d", n)
	}
}

func TestIngestSnapshotOrder(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	c := mustCollector(t, s, "c")
	now := time.Now().UTC().Truncate(time.Microsecond)
	push := func(at time.Time, sysid string) {
		t.Helper()
		if _, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: at,
			Snapshot: &api.Snapshot{CollectedAt: at, Clusters: []api.Cluster{{SystemIdentifier: sysid}}}}); err != nil {
			t.Fatal(err)
		}
	}
	push(now, "current")
	push(now.Add(-time.Hour), "spooled") // delivered late: must not hide the current topology
	topo, err := s.Replication(ctx, c.ID)
	if err != nil || len(topo) != 1 || topo[0].Snapshot.Clusters[0].SystemIdentifier != "current" {
		t.Fatalf("Replication = %+v, %v", topo, err)
	}
	push(now.Add(time.Second), "newer")
	if topo, _ := s.Replication(ctx, c.ID); topo[0].Snapshot.Clusters[0].SystemIdentifier != "newer" {
		t.Fatalf("newer snapshot not stored: %+v", topo)
	}
}

// Two API servers (two stores, cold caches) ingesting the same new series for two collectors at
// once: nothing is lost, no series is duplicated, no deadlock.
func TestIngestConcurrent(t *testing.T) {
	dsn, pool := migratedDB(t)
	servers := []*store.Store{openStore(t, dsn, store.Options{}), openStore(t, dsn, store.Options{})}
	ctx := ctxT(t)
	collectors := []api.Collector{mustCollector(t, servers[0], "c1"), mustCollector(t, servers[0], "c2")}
	const series, pushes = 50, 10
	push := func(k int) *api.PushRequest {
		req := &api.PushRequest{CollectedAt: time.Now()}
		for i := range series {
			// Rotate the order so concurrent pushes meet the series in different orders.
			j := (i + k*7) % series
			req.Metrics = append(req.Metrics, api.Sample{Name: "m", Value: float64(k),
				Labels: map[string]string{"i": fmt.Sprint(j)}})
		}
		return req
	}
	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			for k := range pushes {
				c := collectors[(w+k)%2]
				n, err := servers[w%2].Ingest(context.WithoutCancel(ctx), c.ID, push(w*pushes+k))
				if err != nil {
					return err
				}
				if n != series {
					return fmt.Errorf("accepted %d of %d", n, series)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM series`); n != 2*series {
		t.Fatalf("%d series, want %d", n, 2*series)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM metrics`); n != 4*pushes*series {
		t.Fatalf("%d samples, want %d", n, 4*pushes*series)
	}
}
