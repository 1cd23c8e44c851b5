package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/store"
)

func TestMigrate(t *testing.T) {
	ctx := ctxT(t)
	dsn := pgtest.Shared(t).CreateDB(t, dbName(t))

	before, err := store.MigrationStatus(ctx, dsn)
	if err != nil {
		t.Fatalf("status before: %v", err)
	}
	if len(before) == 0 {
		t.Fatal("no embedded migrations")
	}
	for _, m := range before {
		if m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("fresh database: %+v applied", m)
		}
	}

	// Two servers starting together: both succeed, the migrations are applied exactly once.
	var applied [2][]string
	var g errgroup.Group
	for i := range applied {
		g.Go(func() error {
			var err error
			applied[i], err = store.Migrate(ctx, dsn)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent migrate: %v", err)
	}
	all := slices.Concat(applied[0], applied[1])
	slices.Sort(all)
	var want []string
	for _, m := range before {
		want = append(want, m.Name)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("applied %v and %v, want each of %v once", applied[0], applied[1], want)
	}

	again, err := store.Migrate(ctx, dsn)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate = %v, %v; want nothing to do", again, err)
	}

	after, err := store.MigrationStatus(ctx, dsn)
	if err != nil {
		t.Fatalf("status after: %v", err)
	}
	for i, m := range after {
		if !m.Applied || m.AppliedAt.IsZero() || m.Name != before[i].Name || m.Version != before[i].Version {
			t.Fatalf("after migrate: %+v", m)
		}
		if !strings.HasSuffix(m.Name, ".sql") || m.Version != int64(i+1) {
			t.Fatalf("migration %d named %q version %d", i, m.Name, m.Version)
		}
	}

	// The deployment plan's "\dt" check, as SQL: every relation is there.
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, rel := range []string{"users", "refresh_tokens", "audit_log", "collectors", "collector_configs",
		"collector_snapshots", "collector_status_history", "series", "samples", "metrics", "request_stats",
		"login_failures", "login_addresses", "alert_states", "alerting_status", "cluster_roles"} {
		if queryInt(t, pool, `SELECT count(*) FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace`, rel) != 1 {
			t.Errorf("relation %s missing", rel)
		}
	}
}

func TestMigrateErrors(t *testing.T) {
	ctx := ctxT(t)
	for _, tc := range []struct{ name, dsn string }{
		{"malformed url", "postgres://%zz"},
		{"unreachable", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.Migrate(ctx, tc.dsn); err == nil {
				t.Fatal("Migrate succeeded")
			}
			if _, err := store.MigrationStatus(ctx, tc.dsn); err == nil {
				t.Fatal("MigrationStatus succeeded")
			}
		})
	}
}
