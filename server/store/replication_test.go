package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

func TestReplication(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	b := mustCollector(t, s, "b-collector")
	a := mustCollector(t, s, "a-collector")
	silent := mustCollector(t, s, "silent")
	now := time.Now().UTC().Truncate(time.Microsecond)
	lag := 2.5
	snap := api.Snapshot{CollectedAt: now, Clusters: []api.Cluster{{
		SystemIdentifier: "7345678901234567890", Timeline: 1,
		Instances: []api.Instance{
			{Name: "db1", Address: "db1:5432", Up: true, Role: "primary", ServerVersion: 160012, Timeline: 1, WALLSN: "0/3000060"},
			{Name: "db2", Address: "db2:5432", Up: true, Role: "standby", LastReplayAgeSeconds: &lag,
				Receiver: &api.WALReceiver{Connected: true, Status: "streaming", SlotName: "standby1", ReceivedTimeline: 1}},
		},
		Standbys: []api.Standby{{ApplicationName: "standby1", State: "streaming", SyncState: "async", SlotName: "standby1", ReplayLagBytes: 128, Instance: "db2"}},
		Slots:    []api.Slot{{Name: "standby1", Type: "physical", Active: true, WALStatus: "reserved"}},
	}}}
	for _, c := range []api.Collector{a, b} {
		if _, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: now, Snapshot: &snap,
			Status: &api.CollectorStatus{IntervalSeconds: 10}}); err != nil {
			t.Fatal(err)
		}
	}

	all, err := s.Replication(ctx, "")
	if err != nil || len(all) != 2 || all[0].CollectorID != a.ID || all[1].CollectorID != b.ID {
		t.Fatalf("Replication(all) = %+v, %v", all, err)
	}
	got := all[0]
	if got.CollectorName != "a-collector" || got.Stale || got.ReceivedAt.IsZero() || !got.Snapshot.CollectedAt.Equal(now) {
		t.Fatalf("topology %+v", got)
	}
	cl := got.Snapshot.Clusters[0]
	if cl.SystemIdentifier != snap.Clusters[0].SystemIdentifier || len(cl.Instances) != 2 || *cl.Instances[1].LastReplayAgeSeconds != lag ||
		cl.Standbys[0].ReplayLagBytes != 128 || cl.Slots[0].WALStatus != "reserved" || !cl.Instances[1].Receiver.Connected {
		t.Fatalf("snapshot did not round-trip: %+v", cl)
	}

	for _, tc := range []struct {
		name, id string
		want     int
		err      error
	}{
		{"one", b.ID, 1, nil},
		{"no snapshot yet", silent.ID, 0, nil},
		{"unknown", unknownID, 0, store.ErrNotFound},
		{"malformed", "b-collector", 0, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Replication(ctx, tc.id)
			wantErr(t, err, tc.err)
			if len(got) != tc.want {
				t.Fatalf("%d topologies, want %d", len(got), tc.want)
			}
		})
	}

	t.Run("stale", func(t *testing.T) {
		exec(t, pool, `UPDATE collectors SET last_push_at = now() - interval '21 seconds' WHERE id = $1`, b.ID)
		got, err := s.Replication(ctx, b.ID)
		if err != nil || !got[0].Stale {
			t.Fatalf("not stale after two intervals: %+v, %v", got, err)
		}
		if c, _ := s.Collector(ctx, b.ID); c.Status != store.CollectorStale {
			t.Fatalf("collector status %q", c.Status)
		}
	})

	t.Run("deregistered collectors are not shown", func(t *testing.T) {
		wantErr(t, s.DeleteCollector(ctx, b.ID), nil)
		if all, _ := s.Replication(ctx, ""); len(all) != 1 {
			t.Fatalf("%d topologies", len(all))
		}
	})
}

// listenerPID waits until a session of the store is LISTENing and returns its backend pid.
func listenerPID(t *testing.T, pool *pgxpool.Pool, not int32) int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var pid int32
		err := pool.QueryRow(context.Background(), `
			SELECT pid FROM pg_stat_activity
			 WHERE datname = current_database() AND application_name = 'pganalytics-api'
			   AND query ILIKE 'LISTEN%' AND state = 'idle' AND pid <> $1`, not).Scan(&pid)
		if err == nil {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no listener session appeared")
	return 0
}

func TestListenTopology(t *testing.T) {
	s, pool := newStore(t)
	c := mustCollector(t, s, "c")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	reconnected := make(chan struct{}, 4)
	done := make(chan error, 1)
	go func() {
		done <- s.ListenTopologyWithReconnect(ctx, func(id string) { got <- id }, func() { reconnected <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	expect := func(t *testing.T) {
		t.Helper()
		if _, err := s.Ingest(ctx, c.ID, &api.PushRequest{CollectedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-got:
			if id != c.ID {
				t.Fatalf("notified %q, want %q", id, c.ID)
			}
		case err := <-done:
			t.Fatalf("listener returned: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no notification")
		}
	}

	pid := listenerPID(t, pool, 0)
	expect(t)

	t.Run("refused push notifies nobody", func(t *testing.T) {
		if _, err := s.Ingest(ctx, unknownID, &api.PushRequest{}); err == nil {
			t.Fatal("push for an unknown collector accepted")
		}
		expect(t) // the next notification is the next accepted push's
	})

	t.Run("reconnects after losing its connection", func(t *testing.T) {
		if len(reconnected) != 0 {
			t.Fatal("onReconnect called for the first connection")
		}
		exec(t, pool, `SELECT pg_terminate_backend($1)`, pid)
		listenerPID(t, pool, pid)
		expect(t)
		if len(reconnected) != 1 {
			t.Fatalf("onReconnect called %d times, want 1", len(reconnected))
		}
	})

	t.Run("returns when ctx is done", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ListenTopology = %v", err)
			}
			done <- nil // for the cleanup
		case <-time.After(30 * time.Second):
			t.Fatal("ListenTopology did not return")
		}
	})
}
