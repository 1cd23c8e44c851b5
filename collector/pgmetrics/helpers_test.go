package pgmetrics

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// monitorRole is the seed's collector role: NOINHERIT, granted only pg_monitor.
const monitorRole = "pganalytics"

// createMonitorRole creates the seed's role on c (a primary: standbys get it by replication).
func createMonitorRole(t *testing.T, c *pgtest.Cluster, inherit bool) {
	t.Helper()
	attr := "NOINHERIT"
	if inherit {
		attr = "INHERIT"
	}
	c.Exec(t, "CREATE ROLE "+monitorRole+" WITH LOGIN "+attr+" PASSWORD 'secret-pw'; GRANT pg_monitor TO "+monitorRole)
}

// dsnAs rewrites c's superuser DSN for another user (and password) on database db.
func dsnAs(t *testing.T, c *pgtest.Cluster, db, user, password string) string {
	t.Helper()
	u, err := url.Parse(c.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func newTarget(t *testing.T, name, dsn string, timeout time.Duration) *Target {
	t.Helper()
	tg, err := NewTarget(config.Postgres{Name: name, DSN: dsn, Timeout: config.Dur(timeout)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close(context.Background()) })
	return tg
}

func newTargetPW(t *testing.T, dsn, passwordFile string) *Target {
	t.Helper()
	tg, err := NewTarget(config.Postgres{Name: "db", DSN: dsn, PasswordFile: passwordFile, Timeout: config.Dur(5 * time.Second)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close(context.Background()) })
	return tg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// collectOK collects and fails the test unless the instance is up without any family failure.
func collectOK(t *testing.T, tg *Target) *State {
	t.Helper()
	st := tg.Collect(context.Background(), true)
	if !st.Up {
		t.Fatalf("%s down: %v", tg.Name(), st.Err)
	}
	for _, f := range st.Failures {
		t.Errorf("%s: family failed: %v", tg.Name(), f)
	}
	return st
}

// eventually polls cond (every 100 ms, for up to 30 s) until it holds; progress is described by
// what.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state: %s", what, last)
}

// serverDir makes a directory the server's OS user can write (the harness runs servers as
// "postgres" when the tests run as root), removed when the test ends.
func serverDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pganalytics-collector-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sample finds the value of the sample called name whose labels include want.
func sample(samples []api.Sample, name string, want ...string) (float64, bool) {
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if s.Labels[want[i]] != want[i+1] {
				match = false
				break
			}
		}
		if match {
			return s.Value, true
		}
	}
	return 0, false
}

func replicaByName(rs []Replica, name string) *Replica {
	for i := range rs {
		if rs[i].ApplicationName == name {
			return &rs[i]
		}
	}
	return nil
}

func slotByName(ss []Slot, name string) *Slot {
	for i := range ss {
		if ss[i].Name == name {
			return &ss[i]
		}
	}
	return nil
}

func deref[T any](p *T) any {
	if p == nil {
		return "<nil>"
	}
	return *p
}
