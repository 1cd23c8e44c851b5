package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

const day = 24 * time.Hour

func partitions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'samples'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func dayPartitions(days ...time.Time) []string {
	var names []string
	for _, d := range days {
		names = append(names, "samples_p"+d.UTC().Format("20060102"))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func TestMaintain(t *testing.T) {
	dsn, pool := migratedDB(t)
	const retention = 3 * day
	s := openStore(t, dsn, store.Options{Retention: retention})
	other := openStore(t, dsn, store.Options{Retention: retention}) // a second API server
	ctx := ctxT(t)
	c := mustCollector(t, s, "c")
	now := time.Now().UTC()
	today := now.Truncate(day)

	ingest := func(st *store.Store, ts time.Time) {
		t.Helper()
		n, err := st.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: ts, Metrics: []api.Sample{{Name: "pg_up", Value: 1}}})
		if err != nil || n != 1 {
			t.Fatalf("Ingest at %v = %d, %v", ts, n, err)
		}
	}
	ingest(s, now.Add(-2*day))
	ingest(s, now)
	exec(t, pool, `CREATE TABLE samples_by_hand PARTITION OF samples FOR VALUES FROM ('2000-01-01') TO ('2000-01-02')`)

	for range 2 { // idempotent
		wantErr(t, s.Maintain(ctx, now), nil)
	}
	want := append(dayPartitions(now.Add(-2*day), today, today.Add(day), today.Add(2*day)), "samples_by_hand")
	slices.Sort(want)
	if got := partitions(t, pool); !slices.Equal(got, want) {
		t.Fatalf("partitions after Maintain(now) = %v, want %v", got, want)
	}

	t.Run("retention drops whole days", func(t *testing.T) {
		later := now.Add(5 * day)
		wantErr(t, s.Maintain(ctx, later), nil)
		var keep []time.Time
		existed := []time.Time{now.Add(-2 * day).Truncate(day), today, today.Add(day), today.Add(2 * day)}
		for _, d := range existed {
			// A day survives while any instant of it is within retention.
			if d.Add(day).After(later.Add(-retention)) {
				keep = append(keep, d)
			}
		}
		for i := range 3 {
			keep = append(keep, later.Truncate(day).Add(time.Duration(i)*day))
		}
		if len(keep) != 4 { // today+2 survives, three days ahead of later are created
			t.Fatalf("test arithmetic: keep %v", keep)
		}
		want := append(dayPartitions(keep...), "samples_by_hand")
		slices.Sort(want)
		if got := partitions(t, pool); !slices.Equal(got, want) {
			t.Fatalf("partitions after Maintain(now+5d) = %v, want %v", got, want)
		}
		if n := queryInt(t, pool, `SELECT count(*) FROM metrics`); n != 0 {
			t.Fatalf("%d samples survived retention", n)
		}
	})

	t.Run("a partition dropped by another server is recreated", func(t *testing.T) {
		ingest(other, now) // other recreates today's partition and caches it
		wantErr(t, s.Maintain(ctx, now.Add(5*day)), nil)
		if slices.Contains(partitions(t, pool), dayPartitions(today)[0]) {
			t.Fatal("today's partition not dropped")
		}
		ingest(other, now) // other's cache is stale: the push must still land
		if n := queryInt(t, pool, `SELECT count(*) FROM metrics`); n != 1 {
			t.Fatalf("%d samples, want 1", n)
		}
	})

	t.Run("housekeeping", func(t *testing.T) {
		u, err := s.CreateUser(ctx, "alice", "h", api.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []store.RefreshToken{
			{ID: "expired-long-ago", UserID: u.ID, FamilyID: "f1", ExpiresAt: now.Add(-2 * day)},
			{ID: "expired-recently", UserID: u.ID, FamilyID: "f2", ExpiresAt: now.Add(-time.Hour)},
			{ID: "live", UserID: u.ID, FamilyID: "f3", ExpiresAt: now.Add(time.Hour)},
		} {
			wantErr(t, s.CreateRefreshToken(ctx, tok), nil)
		}
		for _, m := range []time.Time{now.Add(-8 * day), now} {
			wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-1", Minute: m}), nil)
		}
		exec(t, pool, `INSERT INTO collector_status_history VALUES ($1, $2, 1, 0), ($1, $3, 2, 0)`, c.ID, now.Add(-2*day), now)
		wantErr(t, s.Maintain(ctx, now), nil)
		for _, tc := range []struct {
			table string
			want  int64
		}{{"refresh_tokens", 2}, {"request_stats", 1}, {"collector_status_history", 1}} {
			if n := queryInt(t, pool, `SELECT count(*) FROM `+tc.table); n != tc.want {
				t.Errorf("%s: %d rows, want %d", tc.table, n, tc.want)
			}
		}
	})
}
