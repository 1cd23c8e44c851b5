package pgmetrics

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// TestLogicalReplication collects a publisher (logical slot) and a subscriber whose subscription
// lives in another database than the one the collector connects to.
func TestLogicalReplication(t *testing.T) {
	pub, sub := pgtest.StartLogicalPair(t)
	for _, c := range []*pgtest.Cluster{pub, sub} {
		c.Exec(t, "CREATE TABLE items(id int PRIMARY KEY, v text)")
		createMonitorRole(t, c, true)
	}
	pub.Exec(t, "INSERT INTO items SELECT g, 'v' FROM generate_series(1, 100) g")
	pgtest.Subscribe(t, pub, sub, "sub1", "items")
	pub.Exec(t, "INSERT INTO items SELECT g, 'w' FROM generate_series(101, 5000) g")

	publisher := newTarget(t, "publisher", dsnAs(t, pub, "postgres", monitorRole, ""), 5*time.Second)
	sub.CreateDB(t, "appdb") // the collector's database; the subscription lives in postgres
	subscriber := newTarget(t, "subscriber", dsnAs(t, sub, "appdb", monitorRole, ""), 5*time.Second)

	eventually(t, "the logical slot to confirm the inserts", func() (bool, string) {
		st := collectOK(t, publisher)
		s := slotByName(st.Slots, "sub1")
		return s != nil && s.Type == "logical" && s.Plugin == "pgoutput" && s.Database == "postgres" && s.Active &&
			s.ConfirmedFlushLagBytes != nil && *s.ConfirmedFlushLagBytes == 0, fmt.Sprintf("%+v", s)
	})
	st := collectOK(t, publisher)
	if pub.Major >= 14 {
		var found bool
		for _, s := range st.SlotStats {
			found = found || (s.Slot.Name == "sub1" && s.Slot.Plugin == "pgoutput")
		}
		if !found {
			t.Errorf("no pg_stat_replication_slots row for sub1: %+v", st.SlotStats)
		}
		if _, ok := sample(st.Samples(), "pg_replication_slot_total_bytes_total", "slot_name", "sub1", "slot_type", "logical"); !ok {
			t.Error("no pg_replication_slot_total_bytes_total{sub1}")
		}
	}
	if pub.Major >= 16 {
		if s := slotByName(st.Slots, "sub1"); s.Conflicting == nil || *s.Conflicting {
			t.Errorf("conflicting = %v on a healthy logical slot", deref(s.Conflicting))
		}
	}
	if r := replicaByName(st.Replicas, "sub1"); r == nil || r.State != "streaming" {
		t.Errorf("walsender of sub1 = %+v", r)
	}

	ss := collectOK(t, subscriber)
	if len(ss.Subscriptions) != 1 {
		t.Fatalf("subscriptions = %+v", ss.Subscriptions)
	}
	s := ss.Subscriptions[0]
	if s.Name != "sub1" || !s.Enabled || s.Database != "postgres" || s.LastMsgAgeSeconds == nil || s.RelNotReady == nil || *s.RelNotReady != 0 {
		t.Errorf("subscription = %+v (rel not ready %v)", s, deref(s.RelNotReady))
	}
	samples := ss.Samples()
	for _, name := range []string{"pg_subscription_enabled", "pg_subscription_last_msg_age_seconds",
		"pg_subscription_apply_errors_total", "pg_subscription_sync_errors_total", "pg_subscription_rel_not_ready"} {
		if _, ok := sample(samples, name, "subname", "sub1"); !ok {
			t.Errorf("no %s{subname=sub1}", name)
		}
	}

	sub.Exec(t, "ALTER SUBSCRIPTION sub1 DISABLE")
	eventually(t, "the subscription to show disabled", func() (bool, string) {
		subs := collectOK(t, subscriber).Subscriptions
		return len(subs) == 1 && !subs[0].Enabled && subs[0].LastMsgAgeSeconds == nil, fmt.Sprintf("%+v", subs)
	})
}

// TestUnreachable covers what must not stop a collector: a server that is down, one that never
// answers, a wrong password, a role without pg_monitor.
func TestUnreachable(t *testing.T) {
	hbaDir := serverDir(t)
	hba := filepath.Join(hbaDir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(
		"local all all trust\n"+
			"host all postgres 127.0.0.1/32 trust\n"+
			"host all all 127.0.0.1/32 scram-sha-256\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 13 still defaults to md5 password hashes, which scram-sha-256 authentication cannot use.
	c := pgtest.Start(t, pgtest.WithConfig("hba_file", hba), pgtest.WithConfig("password_encryption", "scram-sha-256"))
	createMonitorRole(t, c, true)
	c.Exec(t, "CREATE ROLE nomonitor LOGIN PASSWORD 'pw2'")

	t.Run("wrong password", func(t *testing.T) {
		tg := newTarget(t, "db", dsnAs(t, c, "postgres", monitorRole, "not-the-password"), 5*time.Second)
		st := tg.Collect(context.Background(), true)
		if st.Up || st.Err == nil || !strings.Contains(st.Err.Error(), "password authentication failed") {
			t.Fatalf("up=%v err=%v", st.Up, st.Err)
		}
		if strings.Contains(st.Err.Error(), "not-the-password") {
			t.Errorf("error leaks the password: %v", st.Err)
		}
		if got := st.Samples(); len(got) != 1 || got[0].Name != "pg_up" || got[0].Value != 0 {
			t.Errorf("samples of a down instance = %+v", got)
		}
	})

	t.Run("password file", func(t *testing.T) {
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte("secret-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tg := newTargetPW(t, dsnAs(t, c, "postgres", monitorRole, ""), pw)
		collectOK(t, tg)
	})

	t.Run("role without pg_monitor", func(t *testing.T) {
		tg := newTarget(t, "db", dsnAs(t, c, "postgres", "nomonitor", "pw2"), 5*time.Second)
		st := tg.Collect(context.Background(), true)
		if !st.Up {
			t.Fatalf("down: %v", st.Err)
		}
		failed := map[string]bool{}
		for _, f := range st.Failures {
			failed[f.Family] = true
		}
		for _, fam := range []string{"wal_dir", "archiver"} {
			if !failed[fam] {
				t.Errorf("family %s did not fail without pg_monitor; failures: %v", fam, st.Failures)
			}
		}
	})

	t.Run("session terminated mid-query", func(t *testing.T) {
		tg := newTarget(t, "db", dsnAs(t, c, "postgres", monitorRole, "secret-pw"), 10*time.Second)
		collectOK(t, tg)
		// Hold pg_subscription so that the next collection blocks inside the subscriptions query.
		ctx := context.Background()
		pool := c.Pool(t)
		watch, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer watch.Release()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "LOCK TABLE pg_subscription IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		done := make(chan *State, 1)
		go func() { done <- tg.Collect(ctx, true) }()
		eventually(t, "the collector to wait on the lock", func() (bool, string) {
			var n int
			err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", applicationName).Scan(&n)
			return err == nil && n == 1, fmt.Sprint(n, err)
		})
		if _, err := watch.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", applicationName); err != nil {
			t.Fatal(err)
		}
		st := <-done
		if !st.Up || len(st.Failures) == 0 {
			t.Fatalf("up=%v failures=%v: want the instance up with the interrupted family failed", st.Up, st.Failures)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		collectOK(t, tg)
	})

	t.Run("privilege report", func(t *testing.T) {
		tg := newTarget(t, "db", dsnAs(t, c, "postgres", "nomonitor", "pw2"), 5*time.Second)
		privs, err := tg.CheckPrivileges(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, p := range privs {
			if !p.OK {
				missing++
				if p.Fix != `GRANT pg_monitor TO "nomonitor";` {
					t.Errorf("fix = %q", p.Fix)
				}
			}
		}
		if missing != len(privs) {
			t.Errorf("%d of %d privileges missing, want all: %+v", missing, len(privs), privs)
		}
		ok := newTarget(t, "db", dsnAs(t, c, "postgres", monitorRole, "secret-pw"), 5*time.Second)
		privs, err = ok.CheckPrivileges(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range privs {
			if !p.OK {
				t.Errorf("pg_monitor role misses %s", p.What)
			}
		}
	})

	t.Run("server stopped", func(t *testing.T) {
		tg := newTarget(t, "db", dsnAs(t, c, "postgres", monitorRole, "secret-pw"), 5*time.Second)
		collectOK(t, tg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		st := tg.Collect(context.Background(), true)
		if st.Up || st.Err == nil {
			t.Fatalf("up=%v err=%v after stop", st.Up, st.Err)
		}
		if st.Info.SystemIdentifier == "" {
			t.Error("a down instance forgot its system identifier")
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		collectOK(t, tg)
	})

	t.Run("server never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close() // held open, never answered
			}
		}()
		dsn := fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable", monitorRole, ln.Addr())
		tg := newTarget(t, "silent", dsn, 300*time.Millisecond)
		st := tg.Collect(context.Background(), true)
		if st.Up || st.Err == nil {
			t.Fatalf("up=%v err=%v", st.Up, st.Err)
		}
		if st.Duration > 5*time.Second {
			t.Errorf("a silent server held the collection for %s despite a 300ms timeout", st.Duration)
		}
	})
}
