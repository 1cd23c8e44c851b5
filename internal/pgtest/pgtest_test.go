package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/pgtest"
)

func queryInt(t *testing.T, dsn, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// eventually polls cond until it holds; the deadline only bounds a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

func TestStart(t *testing.T) {
	var dir string
	t.Run("start", func(t *testing.T) {
		c := pgtest.Start(t, pgtest.WithConfig("work_mem", "7MB"))
		dir = c.Dir
		if c.Port == 0 || c.Major < 13 {
			t.Fatalf("port %d major %d", c.Port, c.Major)
		}
		if want := pgtest.Binaries(t).Major; c.Major != want {
			t.Errorf("major %d, want %d", c.Major, want)
		}
		c.Exec(t, "CREATE TABLE t (n int)")
		c.Exec(t, "INSERT INTO t VALUES ($1), ($2)", 1, 2)
		if n := queryInt(t, c.DSN("postgres"), "SELECT sum(n)::int FROM t"); n != 3 {
			t.Errorf("sum = %d", n)
		}
		var workMem string
		if err := c.Pool(t).QueryRow(context.Background(), "SHOW work_mem").Scan(&workMem); err != nil || workMem != "7MB" {
			t.Errorf("work_mem = %q (%v), want 7MB from WithConfig", workMem, err)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir %s outlived its test: %v", dir, err)
	}
}

func TestSharedCreateDB(t *testing.T) {
	shared := pgtest.Shared(t)
	if again := pgtest.Shared(t); again != shared {
		t.Fatal("Shared returned two clusters")
	}
	for _, name := range []string{"alpha", "Beta-db"} {
		t.Run(name, func(t *testing.T) {
			dsn := shared.CreateDB(t, name)
			if n := queryInt(t, dsn, "SELECT count(*)::int FROM pg_database WHERE datname = current_database() AND datname = '"+name+"'"); n != 1 {
				t.Fatalf("DSN %s does not reach database %s", dsn, name)
			}
		})
		if n := queryInt(t, shared.DSN("postgres"), "SELECT count(*)::int FROM pg_database WHERE datname = '"+name+"'"); n != 0 {
			t.Errorf("database %s outlived its test", name)
		}
	}
}

func TestPrimaryStandby(t *testing.T) {
	p, s := pgtest.StartPrimaryStandby(t)
	if n := queryInt(t, p.DSN("postgres"), "SELECT count(*)::int FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'"); n != 1 {
		t.Fatal("standby1 is not streaming")
	}
	p.Exec(t, "CREATE TABLE t AS SELECT 42 AS n")
	eventually(t, "the standby replays the insert", func() bool {
		return queryInt(t, s.DSN("postgres"), "SELECT count(*)::int FROM pg_class WHERE relname = 't'") == 1
	})
}

func TestLogicalPair(t *testing.T) {
	pub, sub := pgtest.StartLogicalPair(t)
	for _, c := range []*pgtest.Cluster{pub, sub} {
		c.Exec(t, "CREATE TABLE items (id int PRIMARY KEY)")
	}
	pgtest.Subscribe(t, pub, sub, "items", "items")
	pub.Exec(t, "INSERT INTO items SELECT generate_series(1, 10)")
	eventually(t, "the subscriber applies the insert", func() bool {
		return queryInt(t, sub.DSN("postgres"), "SELECT count(*)::int FROM items") == 10
	})
}
