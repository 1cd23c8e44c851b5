package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// memberPush is one collector's push of a single member of cluster 42 (one collector per
// instance): a primary with its replication rows, or a standby streaming from senderPort.
func memberPush(name string, port int, primary bool, timeline int64, senderPort int, rows ...string) api.PushRequest {
	p := samplePush(1)
	in := api.Instance{Name: name, Address: fmt.Sprintf("127.0.0.1:%d", port), Up: true, Role: "standby", ServerVersion: 150000,
		Timeline: timeline, WALLSN: "0/3000000"}
	if primary {
		in.Role = "primary"
	} else {
		in.Receiver = &api.WALReceiver{Connected: true, Status: "streaming", SenderHost: "localhost", SenderPort: senderPort,
			ApplicationName: name, ReceivedTimeline: timeline}
	}
	cl := api.Cluster{SystemIdentifier: "42", Name: "orders", Timeline: timeline, Instances: []api.Instance{in}}
	for _, r := range rows {
		cl.Standbys = append(cl.Standbys, api.Standby{Upstream: name, ApplicationName: r, State: "streaming", SyncState: "async"})
	}
	p.Snapshot = &api.Snapshot{CollectedAt: time.Now().UTC(), Clusters: []api.Cluster{cl}}
	return p
}

func (ts *testServer) events(token, query string) api.EventsResponse {
	ts.t.Helper()
	r := ts.do(req{method: "GET", path: "/api/v1/events" + query, token: token})
	mustStatus(ts.t, r, http.StatusOK)
	var er api.EventsResponse
	r.decode(ts.t, &er)
	return er
}

// TestTopologyEvents: two collectors, one per member, behind two servers. The merged view is one
// cluster; promoting the standby while the old primary runs gives promotion and split-brain events,
// through GET /api/v1/events and the event stream; the history answers who was primary.
func TestTopologyEvents(t *testing.T) {
	dsn, st, pool := testDB(t)
	a := startServerOn(t, dsn, st, pool)
	b := startServerOn(t, dsn, st, pool)
	viewer := a.userToken("viewer", api.RoleViewer)
	ca, cb := a.register("col-a"), b.register("col-b")
	push := func(ts *testServer, token string, p api.PushRequest) {
		t.Helper()
		mustStatus(t, ts.push(token, gzipJSON(t, p), true), http.StatusAccepted)
	}
	push(a, ca.Token, memberPush("a", 5001, true, 1, 0, "b"))
	push(b, cb.Token, memberPush("b", 5002, false, 1, 5001))

	var rr api.ReplicationResponse
	waitFor(t, func() bool {
		r := a.do(req{method: "GET", path: "/api/v1/replication", token: viewer})
		mustStatus(t, r, http.StatusOK)
		rr = api.ReplicationResponse{}
		r.decode(t, &rr)
		return len(rr.Clusters) == 1 && len(rr.Clusters[0].Instances) == 2
	})
	cl := rr.Clusters[0]
	if cl.Name != "orders" || cl.Instances[1].Name != "b" || cl.Instances[1].Upstream != "a" || len(cl.Collectors) != 2 || cl.Split {
		t.Fatalf("merged cluster = %+v", cl)
	}
	// The tracker has seen the cluster once it is in the history.
	waitFor(t, func() bool {
		return queryCount(t, a, `SELECT count(*) FROM topology_history WHERE system_identifier = '42'`) > 0
	})
	before := time.Now().UTC()

	events, _, _ := openStream(t, a, viewer, "")
	waitFor(t, func() bool { return a.metricValue("pganalytics_api_sse_subscribers") == "1" })
	push(b, cb.Token, memberPush("b", 5002, true, 2, 0))
	push(a, ca.Token, memberPush("a", 5001, true, 1, 0))

	want := []string{api.EventPromotion, api.EventSplitBrain}
	var got []api.Event
	waitFor(t, func() bool {
		got = a.events(viewer, "?cluster=orders").Events
		return len(got) >= 2
	})
	var kinds []string
	for _, e := range got {
		kinds = append(kinds, e.Kind)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, want) {
		t.Fatalf("events = %v, want %v", kinds, want)
	}
	for _, e := range got {
		if e.Kind == api.EventPromotion && (e.Instance != "b" || e.Details["old_primary"] != "a" || e.Details["new_timeline"] != float64(2)) {
			t.Errorf("promotion = %+v", e)
		}
	}
	streamed := map[string]bool{}
	timeout := time.After(20 * time.Second)
	for len(streamed) < 2 {
		select {
		case ev := <-events:
			if ev.name == "replication_event" {
				var e api.Event
				if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
					t.Fatal(err)
				}
				streamed[e.Kind] = true
			}
		case <-timeout:
			t.Fatalf("streamed events: %v", streamed)
		}
	}

	r := a.do(req{method: "GET", path: "/api/v1/replication?at=" + url.QueryEscape(before.Format(time.RFC3339Nano)), token: viewer})
	mustStatus(t, r, http.StatusOK)
	var then api.ReplicationResponse
	r.decode(t, &then)
	if then.At == nil || len(then.Collectors) != 0 || len(then.Clusters) != 1 || then.Clusters[0].Split || then.Clusters[0].Instances[1].Upstream != "a" {
		t.Errorf("?at= before the promotion = %+v", then)
	}
	var h api.ClusterHistory
	waitFor(t, func() bool {
		r := a.do(req{method: "GET", path: "/api/v1/clusters/orders/history", token: viewer})
		mustStatus(t, r, http.StatusOK)
		h = api.ClusterHistory{}
		r.decode(t, &h)
		return len(h.Periods) == 2
	})
	if !slices.Equal(h.Periods[0].Primaries, []string{"a"}) || !slices.Equal(h.Periods[1].Primaries, []string{"a", "b"}) || h.Periods[1].Timeline != 2 {
		t.Errorf("history = %+v", h)
	}
	if n := a.events(viewer, "?kind=collector_registered").Events; len(n) != 2 {
		t.Errorf("collector_registered events = %+v", n)
	}
	page := a.events(viewer, "?limit=1")
	if len(page.Events) != 1 || page.NextCursor == "" {
		t.Fatalf("page = %+v", page)
	}
	if next := a.events(viewer, "?limit=1&cursor="+page.NextCursor); len(next.Events) != 1 || next.Events[0].ID >= page.Events[0].ID {
		t.Errorf("next page = %+v", next)
	}
}

func queryCount(t *testing.T, ts *testServer, sql string) int {
	t.Helper()
	var n int
	if err := ts.pool.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTopologyBadInput(t *testing.T) {
	ts := startServer(t)
	viewer := ts.userToken("viewer", api.RoleViewer)
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/events?kind=promoted", 400, "not an event kind"},
		{"/api/v1/events?kind=promotion,", 400, "not an event kind"},
		{"/api/v1/events?since=yesterday", 400, "RFC 3339"},
		{"/api/v1/events?since=2026-02-02T00:00:00Z&until=2026-02-01T00:00:00Z", 400, "before since"},
		{"/api/v1/events?limit=0", 400, "1..1000"},
		{"/api/v1/events?cursor=-1", 400, "cursor"},
		{"/api/v1/events?cluster=" + strings.Repeat("x", 65), 400, "at most 64 bytes"},
		{"/api/v1/events?color=red", 400, "unknown query parameter"},
		{"/api/v1/replication?at=now", 400, "RFC 3339"},
		{"/api/v1/replication?at=2026-01-01T00:00:00Z&collector_id=x", 400, "cannot be combined"},
		{"/api/v1/clusters/nope/history", 404, "cluster not found"},
		{"/api/v1/clusters/nope/history?since=2026-02-02T00:00:00Z&until=2026-02-01T00:00:00Z", 400, "after since"},
		{"/api/v1/clusters/nope/history?since=2020-01-01T00:00:00Z&until=2026-02-01T00:00:00Z", 400, "more than 400 days"},
		{"/api/v1/clusters/" + strings.Repeat("x", 65) + "/history", 404, "not found"},
		{"/api/v1/clusters?x=1", 400, "unknown query parameter"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := ts.do(req{method: "GET", path: tc.path, token: viewer})
			if r.status != tc.status || !strings.Contains(r.errorMessage(), tc.want) {
				t.Errorf("%d %q, want %d with %q", r.status, r.errorMessage(), tc.status, tc.want)
			}
		})
	}
	for _, p := range []string{"/api/v1/events", "/api/v1/clusters", "/api/v1/clusters/x/history"} {
		if r := ts.do(req{method: "GET", path: p}); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", p, r.status)
		}
	}
	r := ts.do(req{method: "GET", path: "/api/v1/replication?at=2026-01-01T00:00:00Z", token: viewer})
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"clusters":[]`) || !strings.Contains(string(r.body), `"collectors":[]`) {
		t.Errorf("empty history answer: %s", r.body)
	}
}
