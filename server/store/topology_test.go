package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

func clusterView(sysid, name string, primaries ...string) api.ClusterView {
	v := api.ClusterView{Cluster: api.Cluster{SystemIdentifier: sysid, Name: name, Timeline: int64(len(primaries))}}
	for _, p := range primaries {
		v.Instances = append(v.Instances, api.Instance{Name: p, Up: true, Role: "primary", Timeline: v.Timeline})
	}
	return v
}

func change(v api.ClusterView, history bool, evs ...api.Event) store.ClusterChange {
	for i := range evs {
		evs[i].SystemIdentifier, evs[i].Cluster = v.SystemIdentifier, v.Name
	}
	return store.ClusterChange{View: v, Signature: store.SignatureOf(&v), History: history, Events: evs}
}

func TestRecordTopologyHistoryAndEvents(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	t1, t2 := t0.Add(30*time.Second), t0.Add(45*time.Second)

	notified := make(chan string, 16)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = s.ListenTopology(lctx, func(p string) { notified <- p }) }()
	// LISTEN is up once a ping comes through.
	waitFor(t, func() bool {
		exec(t, pool, `SELECT pg_notify($1, 'ping')`, store.TopologyChannel)
		select {
		case p := <-notified:
			return p == "ping"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	for len(notified) > 0 {
		<-notified
	}

	ev := func(kind, instance string, at time.Time) api.Event {
		return api.Event{At: at, Kind: kind, Severity: api.SeverityInfo, Instance: instance, Message: kind}
	}
	if _, err := s.RecordTopology(ctx, t0, []store.ClusterChange{change(clusterView("1", "orders", "a"), true), change(clusterView("2", "billing", "x"), true)}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.RecordTopology(ctx, t1, []store.ClusterChange{change(clusterView("1", "orders", "a", "b"), true,
		ev(api.EventPromotion, "b", t1), ev(api.EventSplitBrain, "", t1))})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID == 0 || evs[1].ID <= evs[0].ID {
		t.Fatalf("recorded events = %+v", evs)
	}
	// Not in the history (only the figures moved): ?at= still answers the row before.
	if _, err := s.RecordTopology(ctx, t2, []store.ClusterChange{change(clusterView("1", "orders", "b"), false, ev(api.EventSplitBrainResolved, "", t2))}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-notified:
		if id, ok := store.EventID(p); !ok || id != evs[0].ID {
			t.Errorf("first notification %q, want event %d", p, evs[0].ID)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notification of the events")
	}

	t.Run("at", func(t *testing.T) {
		for _, tc := range []struct {
			at   time.Time
			want []string // name:primaries
		}{
			{t0.Add(-time.Second), nil},
			{t0, []string{"billing:x", "orders:a"}},
			{t1.Add(time.Second), []string{"billing:x", "orders:a,b"}},
			{t2.Add(time.Second), []string{"billing:x", "orders:a,b"}},
			{t0.Add(3*store.HistoryKeyframe + time.Second), []string{"orders:a,b"}}, // billing no longer watched then
			{t0.Add(time.Hour), nil},
		} {
			views, err := s.TopologyAt(ctx, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range views {
				p := ""
				for i, in := range v.Instances {
					if i > 0 {
						p += ","
					}
					p += in.Name
				}
				got = append(got, v.Name+":"+p)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("at %s: %v, want %v", tc.at.Sub(t0), got, tc.want)
			}
		}
	})

	t.Run("cluster history", func(t *testing.T) {
		h, err := s.ClusterHistory(ctx, "orders", t0.Add(-time.Minute), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if h.SystemIdentifier != "1" || len(h.Periods) != 2 || !slices.Equal(h.Periods[0].Primaries, []string{"a"}) ||
			h.Periods[0].Until == nil || !h.Periods[0].Until.Equal(t1) || !slices.Equal(h.Periods[1].Primaries, []string{"a", "b"}) ||
			h.Periods[1].Until != nil {
			t.Errorf("history = %+v", h)
		}
		// From inside the first period: it starts with the period running then.
		h, err = s.ClusterHistory(ctx, "1", t0.Add(10*time.Second), t0.Add(20*time.Second))
		if err != nil || len(h.Periods) != 1 || !slices.Equal(h.Periods[0].Primaries, []string{"a"}) {
			t.Errorf("history inside a period = %+v, %v", h, err)
		}
		if _, err := s.ClusterHistory(ctx, "nope", t0, t1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown cluster: %v", err)
		}
		exec(t, pool, `UPDATE clusters SET name = 'orders'`)
		if _, err := s.ClusterHistory(ctx, "orders", t0, t1); !errors.Is(err, store.ErrAmbiguous) {
			t.Errorf("two clusters called orders: %v", err)
		}
		if _, err := s.ClusterHistory(ctx, "2", t0, t1); err != nil {
			t.Errorf("by system identifier despite the shared name: %v", err)
		}
		exec(t, pool, `UPDATE clusters SET name = 'billing' WHERE system_identifier = '2'`)
	})

	t.Run("events", func(t *testing.T) {
		c := mustCollector(t, s, "col-a")
		wantErr(t, s.DeleteCollector(ctx, c.ID), nil)
		for _, tc := range []struct {
			name string
			q    store.EventQuery
			want []string
		}{
			{"all, newest first", store.EventQuery{}, []string{"collector_deleted", "collector_registered", "split_brain_resolved", "split_brain", "promotion"}},
			{"by cluster name", store.EventQuery{Cluster: "orders"}, []string{"split_brain_resolved", "split_brain", "promotion"}},
			{"by system identifier", store.EventQuery{Cluster: "1", Kinds: []string{api.EventPromotion}}, []string{"promotion"}},
			{"other cluster", store.EventQuery{Cluster: "billing"}, nil},
			{"instance", store.EventQuery{Instance: "b"}, []string{"promotion"}},
			{"window", store.EventQuery{Since: t1, Until: t2}, []string{"split_brain", "promotion"}},
			{"page", store.EventQuery{Limit: 2, Before: evs[1].ID + 1}, []string{"split_brain", "promotion"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Events(ctx, tc.q)
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, e := range got {
					kinds = append(kinds, e.Kind)
				}
				if !slices.Equal(kinds, tc.want) {
					t.Errorf("kinds = %v, want %v", kinds, tc.want)
				}
			})
		}
		e, err := s.Event(ctx, evs[0].ID)
		if err != nil || e.Kind != api.EventPromotion || e.Cluster != "orders" || e.Instance != "b" || !e.At.Equal(t1) {
			t.Errorf("event = %+v, %v", e, err)
		}
		if _, err := s.Event(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing event: %v", err)
		}
	})

	t.Run("retention", func(t *testing.T) {
		exec(t, pool, `UPDATE events SET at = at - interval '400 days' WHERE kind = 'promotion'`)
		exec(t, pool, `UPDATE topology_history SET at = at - interval '400 days' WHERE system_identifier = '2'`)
		wantErr(t, s.Maintain(ctx, time.Now()), nil)
		if n := queryInt(t, pool, `SELECT count(*) FROM events WHERE kind = 'promotion'`); n != 0 {
			t.Errorf("%d events past retention kept", n)
		}
		if n := queryInt(t, pool, `SELECT count(*) FROM topology_history WHERE system_identifier = '2'`); n != 0 {
			t.Errorf("%d history rows past retention kept", n)
		}
		if n := queryInt(t, pool, `SELECT count(*) FROM events`); n != 4 {
			t.Errorf("%d events left, want 4", n)
		}
	})
}

// TestObserveEvents: the events of the last 15 minutes are quantities the alert rules read.
func TestObserveEvents(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	now := time.Now()
	v := clusterView("9", "orders", "a")
	_, err := s.RecordTopology(ctx, now, []store.ClusterChange{change(v, true,
		api.Event{At: now.Add(-time.Minute), Kind: api.EventSlotInvalidated, Severity: api.SeverityCritical, Instance: "a", Message: "lost"},
		api.Event{At: now.Add(-2 * time.Minute), Kind: api.EventSlotInvalidated, Severity: api.SeverityCritical, Instance: "a", Message: "lost"},
		api.Event{At: now.Add(-time.Hour), Kind: api.EventInstanceRestarted, Severity: api.SeverityWarning, Instance: "a", Message: "old"})})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := s.Observe(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, o := range obs {
		switch o.Quantity {
		case "events_slot_invalidated_15m":
			found++
			if o.Value != 2 || o.Labels["cluster"] != "9" || o.Labels["cluster_name"] != "orders" || o.Labels["instance"] != "a" {
				t.Errorf("observation %+v", o)
			}
		case "events_instance_restarted_15m":
			t.Errorf("an event an hour old observed: %+v", o)
		}
	}
	if found != 1 {
		t.Errorf("%d slot_invalidated observations, want 1", found)
	}
}

// BenchmarkTopologyAt7Days: GET /replication?at= over 7 days of history of 10 clusters (a row a
// minute each, the keyframe rate, 100,800 rows, each the view of a primary with three standbys),
// at random times. Also the primary-over-time of one cluster over the 7 days.
func BenchmarkTopologyAt7Days(b *testing.B) {
	s, pool := newStore(b)
	ctx := context.Background()
	now := time.Now().Truncate(time.Minute)
	const clusters, days = 10, 7
	for c := range clusters {
		v := clusterView(fmt.Sprint(7000+c), fmt.Sprintf("cluster%02d", c), "db1")
		for i := range 3 {
			lag := int64(i * 4096)
			v.Instances = append(v.Instances, api.Instance{Name: fmt.Sprintf("db%d", i+2), Address: fmt.Sprintf("10.0.%d.%d:5432", c, i+2),
				Up: true, Role: "standby", ServerVersion: 160004, Timeline: 1, Upstream: "db1", UpstreamLagBytes: &lag,
				Receiver: &api.WALReceiver{Connected: true, Status: "streaming", SenderHost: "10.0.0.1", SenderPort: 5432, ApplicationName: fmt.Sprintf("db%d", i+2)}})
			v.Standbys = append(v.Standbys, api.Standby{Upstream: "db1", ApplicationName: fmt.Sprintf("db%d", i+2), Instance: fmt.Sprintf("db%d", i+2),
				State: "streaming", SyncState: "async", SlotName: fmt.Sprintf("db%d", i+2), ReplayLagBytes: lag})
			v.Slots = append(v.Slots, api.Slot{Instance: "db1", Name: fmt.Sprintf("db%d", i+2), Type: "physical", Active: true, WALStatus: "reserved"})
		}
		raw, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.RecordTopology(ctx, now, []store.ClusterChange{change(v, false)}); err != nil {
			b.Fatal(err)
		}
		exec(b, pool, `INSERT INTO topology_history (system_identifier, at, primaries, timeline, view)
			SELECT $1, $2::timestamptz - make_interval(mins => m), '{db1}', 1, $3::jsonb FROM generate_series(0, $4) AS m`,
			v.SystemIdentifier, now, string(raw), days*24*60-1)
	}
	exec(b, pool, `ANALYZE topology_history`)
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("at", func(b *testing.B) {
		for b.Loop() {
			at := now.Add(-time.Duration(rng.Int64N(int64(days * 24 * time.Hour))))
			views, err := s.TopologyAt(ctx, at)
			if err != nil || len(views) != clusters {
				b.Fatalf("%d views, %v", len(views), err)
			}
		}
	})
	b.Run("history", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.ClusterHistory(ctx, "cluster03", now.Add(-days*24*time.Hour), now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
