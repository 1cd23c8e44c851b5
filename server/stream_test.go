package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// sseEvent is one parsed event of the replication stream.
type sseEvent struct {
	name string
	data string
}

// openStream connects to the replication stream and delivers its events (comments skipped).
func openStream(t *testing.T, ts *testServer, token, query string) (<-chan sseEvent, *http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	hr, err := http.NewRequestWithContext(ctx, "GET", ts.url+"/api/v1/replication/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: ts.client.Transport} // no overall timeout on a stream
	res, err := client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sseEvent, 64)
	go func() {
		defer close(events)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" || ev.name != "" {
					events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "retry: "):
				ev.name = "retry"
			}
		}
	}()
	t.Cleanup(cancel)
	return events, res, cancel
}

func nextTopology(t *testing.T, events <-chan sseEvent) api.CollectorTopology {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.name != "topology" {
				continue
			}
			var top api.CollectorTopology
			if err := json.Unmarshal([]byte(ev.data), &top); err != nil {
				t.Fatalf("event data %q: %v", ev.data, err)
			}
			return top
		case <-timeout:
			t.Fatal("no topology event within 20s")
		}
	}
}

func snapshotPush(system string) api.PushRequest {
	p := samplePush(3)
	p.Snapshot = &api.Snapshot{CollectedAt: p.CollectedAt, Clusters: []api.Cluster{{
		SystemIdentifier: system, Timeline: 1,
		Instances: []api.Instance{{Name: "db1", Address: "db1:5432", Up: true, Role: "primary", ServerVersion: 150000, Timeline: 1}},
		Standbys:  []api.Standby{{ApplicationName: "standby1", State: "streaming", SyncState: "async", ReplayLagBytes: 42}},
	}}}
	return p
}

// TestReplicationStreamAcrossServers follows the stream on one server while a collector pushes to
// another server over the same database: LISTEN/NOTIFY carries the push across.
func TestReplicationStreamAcrossServers(t *testing.T) {
	dsn, st, pool := testDB(t)
	a := startServerOn(t, dsn, st, pool)
	b := startServerOn(t, dsn, st, pool)
	viewer := a.userToken("viewer", api.RoleViewer)
	reg := b.register("streamed")

	events, res, _ := openStream(t, a, viewer, "")
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" || res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d %s", res.StatusCode, ct)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatal("stream without security headers")
	}
	waitFor(t, func() bool { return a.metricValue("pganalytics_api_sse_subscribers") == "1" })

	mustStatus(t, b.push(reg.Token, gzipJSON(t, snapshotPush("7000000000000000001")), true), http.StatusAccepted)
	top := nextTopology(t, events)
	if top.CollectorID != reg.CollectorID || len(top.Snapshot.Clusters) != 1 ||
		top.Snapshot.Clusters[0].Standbys[0].ReplayLagBytes != 42 {
		t.Fatalf("topology %+v", top)
	}

	t.Run("a filtered stream starts with the current state", func(t *testing.T) {
		events, _, cancel := openStream(t, b, viewer, "?collector_id="+reg.CollectorID)
		defer cancel()
		if top := nextTopology(t, events); top.CollectorID != reg.CollectorID {
			t.Fatalf("initial topology %+v", top)
		}
	})

	t.Run("client disconnect is honoured", func(t *testing.T) {
		_, _, cancel := openStream(t, a, viewer, "")
		waitFor(t, func() bool { return a.metricValue("pganalytics_api_sse_subscribers") == "2" })
		cancel()
		waitFor(t, func() bool { return a.metricValue("pganalytics_api_sse_subscribers") == "1" })
	})

	t.Run("collectors may not follow the stream", func(t *testing.T) {
		r := a.do(req{method: "GET", path: "/api/v1/replication/stream", token: reg.Token})
		mustStatus(t, r, http.StatusForbidden)
	})

	t.Run("shutdown ends open streams", func(t *testing.T) {
		if err := a.stop(); err != nil {
			t.Fatalf("shutdown with an open stream: %v", err)
		}
		for range events {
		}
	})
}
