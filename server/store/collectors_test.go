package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

func TestCollectors(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)

	c, err := s.CreateCollector(ctx, "prod-collector-01", "collector1.prod", "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.Status != store.CollectorNeverPushed || c.RegisteredAt.IsZero() || c.LastPushAt != nil {
		t.Fatalf("created %+v", c)
	}

	t.Run("create errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, cname, token string
			want               error
		}{
			{"duplicate active name", "prod-collector-01", "jti-x", store.ErrConflict},
			{"empty name", "", "jti-x", store.ErrInvalid},
			{"empty token", "prod-collector-02", "", store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.CreateCollector(ctx, tc.cname, "h", tc.token)
				wantErr(t, err, tc.want)
			})
		}
	})

	t.Run("get", func(t *testing.T) {
		for _, tc := range []struct {
			name, id string
			want     error
		}{
			{"existing", c.ID, nil},
			{"unknown", unknownID, store.ErrNotFound},
			{"malformed", "collector-id", store.ErrNotFound},
			{"empty", "", store.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Collector(ctx, tc.id)
				wantErr(t, err, tc.want)
				if tc.want == nil && (got.ID != c.ID || got.Name != c.Name || got.Hostname != c.Hostname || got.Status != store.CollectorNeverPushed) {
					t.Fatalf("Collector = %+v", got)
				}
			})
		}
	})

	t.Run("token", func(t *testing.T) {
		for _, tc := range []struct {
			name, id, token string
			want            bool
		}{
			{"current", c.ID, "jti-1", true},
			{"other token", c.ID, "jti-2", false},
			{"empty token", c.ID, "", false},
			{"unknown collector", unknownID, "jti-1", false},
			{"malformed collector", "x", "jti-1", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.CollectorTokenActive(ctx, tc.id, tc.token)
				if err != nil || got != tc.want {
					t.Fatalf("CollectorTokenActive = %v, %v; want %v", got, err, tc.want)
				}
			})
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		b := mustCollector(t, s, "a-collector")
		list, err := s.ListCollectors(ctx)
		if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != c.ID {
			t.Fatalf("ListCollectors = %+v, %v", list, err)
		}
		wantErr(t, s.DeleteCollector(ctx, b.ID), nil)
		wantErr(t, s.DeleteCollector(ctx, b.ID), store.ErrNotFound)
		wantErr(t, s.DeleteCollector(ctx, "nope"), store.ErrNotFound)
		if ok, _ := s.CollectorTokenActive(ctx, b.ID, "jti-a-collector"); ok {
			t.Fatal("token of a deleted collector still active")
		}
		_, err = s.Collector(ctx, b.ID)
		wantErr(t, err, store.ErrNotFound)
		if list, _ := s.ListCollectors(ctx); len(list) != 1 {
			t.Fatalf("deleted collector listed: %+v", list)
		}
		// The name is free again.
		if _, err := s.CreateCollector(ctx, "a-collector", "h", "jti-new"); err != nil {
			t.Fatalf("reuse a deregistered name: %v", err)
		}
	})
}

func TestCollectorConfig(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	c := mustCollector(t, s, "c1")

	cfg, err := s.CollectorConfig(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := api.CollectorConfig{CollectorID: c.ID, IntervalSeconds: 10, PgReplicationEnabled: true, QueryTimeoutSeconds: 5}
	if cfg != want {
		t.Fatalf("defaults = %+v, want %+v", cfg, want)
	}

	put := api.CollectorConfig{CollectorID: c.ID, IntervalSeconds: 30, PgReplicationEnabled: false, QueryTimeoutSeconds: 10}
	stored, err := s.PutCollectorConfig(ctx, put, "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	if stored.UpdatedAt == nil || stored.UpdatedBy != "user:alice" || stored.IntervalSeconds != 30 || stored.PgReplicationEnabled {
		t.Fatalf("stored %+v", stored)
	}
	got, err := s.CollectorConfig(ctx, c.ID)
	if err != nil || got.IntervalSeconds != 30 || got.PgReplicationEnabled || got.QueryTimeoutSeconds != 10 ||
		got.UpdatedBy != "user:alice" || got.UpdatedAt == nil || !got.UpdatedAt.Equal(*stored.UpdatedAt) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	put.IntervalSeconds = 60
	if again, err := s.PutCollectorConfig(ctx, put, "user:bob"); err != nil || again.IntervalSeconds != 60 || again.UpdatedBy != "user:bob" {
		t.Fatalf("second put = %+v, %v", again, err)
	}

	for _, tc := range []struct {
		name string
		cfg  api.CollectorConfig
		want error
	}{
		{"zero interval", api.CollectorConfig{CollectorID: c.ID, IntervalSeconds: 0, QueryTimeoutSeconds: 5}, store.ErrInvalid},
		{"huge interval", api.CollectorConfig{CollectorID: c.ID, IntervalSeconds: 1 << 30, QueryTimeoutSeconds: 5}, store.ErrInvalid},
		{"negative timeout", api.CollectorConfig{CollectorID: c.ID, IntervalSeconds: 10, QueryTimeoutSeconds: -1}, store.ErrInvalid},
		{"unknown collector", api.CollectorConfig{CollectorID: unknownID, IntervalSeconds: 10, QueryTimeoutSeconds: 5}, store.ErrNotFound},
		{"malformed collector", api.CollectorConfig{CollectorID: "c1", IntervalSeconds: 10, QueryTimeoutSeconds: 5}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutCollectorConfig(ctx, tc.cfg, "user:alice")
			wantErr(t, err, tc.want)
		})
	}
	for _, id := range []string{unknownID, "c1"} {
		_, err := s.CollectorConfig(ctx, id)
		wantErr(t, err, store.ErrNotFound)
	}
	wantErr(t, s.DeleteCollector(ctx, c.ID), nil)
	_, err = s.CollectorConfig(ctx, c.ID)
	wantErr(t, err, store.ErrNotFound)
}

func TestAudit(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	at := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
	entries := []api.AuditEntry{
		{At: at, Actor: "anonymous", Action: "login_failed", Target: "user:alice", IP: "192.0.2.1", Success: false},
		{Actor: "user:alice", Action: "login", IP: "192.0.2.1", Success: true},
		{Actor: "user:alice", Action: "config_changed", Target: "collector:x", Success: true, Detail: json.RawMessage(`{"interval_seconds": 30}`)},
	}
	for _, e := range entries {
		wantErr(t, s.Audit(ctx, e), nil)
	}
	for _, tc := range []struct {
		name string
		e    api.AuditEntry
	}{
		{"no actor", api.AuditEntry{Action: "login"}},
		{"no action", api.AuditEntry{Actor: "anonymous"}},
		{"detail not JSON", api.AuditEntry{Actor: "a", Action: "b", Detail: json.RawMessage(`{oops`)}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, s.Audit(ctx, tc.e), store.ErrInvalid) })
	}

	all, err := s.ListAudit(ctx, store.AuditQuery{})
	if err != nil || len(all) != 3 {
		t.Fatalf("ListAudit = %d entries, %v", len(all), err)
	}
	if all[0].Action != "config_changed" || all[2].Action != "login_failed" || !all[2].At.Equal(at) || all[1].At.IsZero() {
		t.Fatalf("order or times wrong: %+v", all)
	}
	var detail map[string]int
	if err := json.Unmarshal(all[0].Detail, &detail); err != nil || detail["interval_seconds"] != 30 {
		t.Fatalf("detail %s", all[0].Detail)
	}
	if all[1].Detail != nil || all[2].IP != "192.0.2.1" || all[2].Target != "user:alice" || all[2].Success {
		t.Fatalf("fields: %+v", all[1:])
	}

	for _, tc := range []struct {
		name string
		q    store.AuditQuery
		want []string
	}{
		{"limit", store.AuditQuery{Limit: 2}, []string{"config_changed", "login"}},
		{"before", store.AuditQuery{BeforeID: all[0].ID}, []string{"login", "login_failed"}},
		{"action", store.AuditQuery{Action: "login"}, []string{"login"}},
		{"action and before", store.AuditQuery{Action: "config_changed", BeforeID: all[0].ID}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, e := range got {
				actions = append(actions, e.Action)
			}
			if len(actions) != len(tc.want) {
				t.Fatalf("got %v, want %v", actions, tc.want)
			}
			for i := range actions {
				if actions[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", actions, tc.want)
				}
			}
		})
	}

	t.Run("append-only", func(t *testing.T) {
		for _, sql := range []string{
			`UPDATE audit_log SET success = true`,
			`DELETE FROM audit_log`,
			`DELETE FROM audit_log WHERE false`,
			`TRUNCATE audit_log`,
		} {
			if _, err := pool.Exec(ctx, sql); err == nil {
				t.Errorf("%s succeeded", sql)
			}
		}
		if n := queryInt(t, pool, `SELECT count(*) FROM audit_log`); n != 3 {
			t.Fatalf("%d entries left", n)
		}
	})
}

func TestRecordRequestStats(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	minute := time.Date(2026, 2, 27, 15, 4, 0, 0, time.UTC)
	wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-1", Minute: minute.Add(12 * time.Second), Requests: 10}), nil)
	// A later flush of the same minute replaces the earlier running totals.
	wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-1", Minute: minute.Add(50 * time.Second), Requests: 25, DBErrors: 1, DurationP95Ms: 12.5}), nil)
	wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-2", Minute: minute, Requests: 7}), nil)
	if n := queryInt(t, pool, `SELECT sum(requests) FROM request_stats WHERE minute = $1`, minute); n != 32 {
		t.Fatalf("requests in the minute = %d, want 32", n)
	}
	wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Minute: minute}), store.ErrInvalid)
	wantErr(t, s.RecordRequestStats(ctx, store.RequestStats{Server: "api-1"}), store.ErrInvalid)
}
