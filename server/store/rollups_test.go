package store_test

import (
	"math"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// TestRollups: the backfill rolls existing samples up by minute and hour; later pushes extend the
// rollups from where they stopped; late samples (a spool delivered after an outage) recompute the
// hours they touched; each bucket's min, max, sum, count and last match the raw samples.
func TestRollups(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	c := mustCollector(t, s, "rollups")
	now := time.Now().UTC()
	base := now.Add(-3 * time.Hour).Truncate(time.Hour)
	push := func(at time.Time, v float64) {
		t.Helper()
		req := &api.PushRequest{CollectedAt: at, Metrics: []api.Sample{
			{Name: "pg_replication_replay_lag_bytes", Value: v, Labels: map[string]string{"application_name": "s1"}},
		}}
		if _, err := s.Ingest(ctx, c.ID, req); err != nil {
			t.Fatal(err)
		}
	}
	// Two hours of a sample every 10 s, values 0, 1, 2, …
	n := 0
	for at := base; at.Before(base.Add(2 * time.Hour)); at = at.Add(10 * time.Second) {
		push(at, float64(n))
		n++
	}
	maintain := func() store.RollupProgress {
		t.Helper()
		var p store.RollupProgress
		for {
			var err error
			if p, err = s.MaintainRollups(ctx, now); err != nil {
				t.Fatal(err)
			}
			if !p.Behind {
				return p
			}
		}
	}
	p := maintain()
	if want := now.Add(-store.RollupSettle).Truncate(time.Minute); !p.MinutesUntil.Equal(want) || !p.HoursUntil.Equal(want.Truncate(time.Hour)) ||
		!p.FivesUntil.Equal(want.Truncate(5*time.Minute)) {
		t.Fatalf("progress %+v, want minutes until %s", p, want)
	}
	check := func(table string, bucket time.Time, wantMin, wantMax, wantSum float64, wantCount int, wantLast float64) {
		t.Helper()
		var mn, mx, sum, last float64
		var count int
		err := pool.QueryRow(ctx, `SELECT min, max, sum, count, last FROM `+table+` WHERE collector_id = $1 AND bucket = $2`,
			c.ID, bucket).Scan(&mn, &mx, &sum, &count, &last)
		if err != nil {
			t.Fatalf("%s at %s: %v", table, bucket, err)
		}
		if mn != wantMin || mx != wantMax || math.Abs(sum-wantSum) > 1e-9 || count != wantCount || last != wantLast {
			t.Errorf("%s at %s: min %v max %v sum %v count %d last %v; want %v %v %v %d %v", table, bucket,
				mn, mx, sum, count, last, wantMin, wantMax, wantSum, wantCount, wantLast)
		}
	}
	// Minute 1 holds samples 6..11; 5 minutes 1 holds 30..59; hour 0 holds 0..359.
	check("samples_1m", base.Add(time.Minute), 6, 11, 6+7+8+9+10+11, 6, 11)
	check("samples_5m", base.Add(5*time.Minute), 30, 59, (30+59)*30/2, 30, 59)
	check("samples_1h", base, 0, 359, 359*360/2, 360, 359)
	var minutes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM samples_1m WHERE collector_id = $1`, c.ID).Scan(&minutes); err != nil || minutes != 120 {
		t.Errorf("%d minute buckets, want 120 (%v)", minutes, err)
	}
	counted := func(bucket time.Time) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, `SELECT samples FROM collector_counts_1m WHERE collector_id = $1 AND bucket = $2`, c.ID, bucket).Scan(&n); err != nil {
			t.Fatalf("collector count at %s: %v", bucket, err)
		}
		return n
	}
	if n := counted(base.Add(time.Minute)); n != 6 {
		t.Errorf("collector count of minute 1: %d, want 6", n)
	}

	// A late sample in hour 0 (a spool delivered late) is rolled up again.
	push(base.Add(30*time.Second+time.Second), 1000)
	p = maintain()
	if p.Recomputed != 1 {
		t.Errorf("recomputed %d dirty hours, want 1", p.Recomputed)
	}
	check("samples_1m", base, 0, 1000, 0+1+2+3+4+5+1000, 7, 5) // last stays the latest timestamp's value
	check("samples_5m", base, 0, 1000, 29*30/2+1000, 31, 29)
	if n := counted(base); n != 7 {
		t.Errorf("collector count of minute 0 after the late sample: %d, want 7", n)
	}
	check("samples_1h", base, 0, 1000, 359*360/2+1000, 361, 359)

	// The API's history query reads them with a step.
	got, err := s.QueryMetrics(ctx, store.MetricsQuery{CollectorID: c.ID, Name: "pg_replication_replay_lag_bytes",
		Since: base.Add(10 * time.Second), Until: base.Add(time.Hour + 30*time.Minute), Step: time.Hour})
	if err != nil || len(got) != 2 {
		t.Fatalf("hourly history: %+v, %v", got, err)
	}
	h0 := got[1] // newest first
	if !h0.Timestamp.Equal(base) || *h0.Max != 1000 || h0.Count != 361 || h0.Value != (359*360/2+1000)/361.0 || *h0.Last != 359 {
		t.Errorf("hour 0: %+v (max %v last %v)", h0, *h0.Max, *h0.Last)
	}
	got, err = s.QueryMetrics(ctx, store.MetricsQuery{CollectorID: c.ID, Name: "pg_replication_replay_lag_bytes",
		Since: base, Until: base.Add(9 * time.Minute), Step: 5 * time.Minute})
	if err != nil || len(got) != 2 || !got[1].Timestamp.Equal(base) || got[1].Count != 31 || *got[0].Min != 30 {
		t.Fatalf("5-minute history: %+v, %v", got, err)
	}
	if _, err := s.QueryMetrics(ctx, store.MetricsQuery{Step: 10 * time.Minute}); err == nil {
		t.Error("a 10m step was accepted")
	}
}
