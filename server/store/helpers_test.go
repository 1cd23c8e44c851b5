package store_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/store"
)

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName derives a database name unique among the tests sharing the cluster.
func dbName(t testing.TB) string {
	n := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(n) > 50 {
		n = n[:50]
	}
	return "st_" + n
}

// migratedDB creates a fresh migrated database and returns its DSN and a superuser pool on it.
func migratedDB(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := pgtest.Shared(t).CreateDB(t, dbName(t))
	if _, err := store.Migrate(context.Background(), dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return dsn, pool
}

func openStore(t testing.TB, dsn string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// newStore is a store on a fresh migrated database, plus a superuser pool for checks.
func newStore(t testing.TB) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	dsn, pool := migratedDB(t)
	return openStore(t, dsn, store.Options{}), pool
}

func mustCollector(t testing.TB, s *store.Store, name string) api.Collector {
	t.Helper()
	c, err := s.CreateCollector(context.Background(), name, name+".example", "jti-"+name)
	if err != nil {
		t.Fatalf("create collector %s: %v", name, err)
	}
	return c
}

func queryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func exec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func wantErr(t testing.TB, got, want error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Fatalf("unexpected error: %v", got)
		}
		return
	}
	if !errors.Is(got, want) {
		t.Fatalf("error = %v, want %v", got, want)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
