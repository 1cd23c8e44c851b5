package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/demo"
)

// TestFailoverTopology runs a real chain db1 → db1_standby → db1_cascade under one collector and
// fails it over the hard way: promote db1_standby while db1 keeps running and taking writes (a split
// brain), rewind db1 with pg_rewind into a standby of the new primary, then lose a slot. Every step
// must show in the API's merged tree and events, and ?at= must still answer the topology before.
func TestFailoverTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test: long")
	}
	const interval = 2 * time.Second
	s := startStackWith(t, interval, func(o *demo.Options) { o.Cascade = true })
	ctx := t.Context()
	api_ := s.apiClient(t)
	st := s.env.Stack
	primary, standby := st.Cluster(demo.ClusterPrimary), st.Cluster(demo.ClusterStandby)

	// The chain, each member under the one it streams from.
	tree := func(c api.ClusterView) []string {
		var out []string
		for _, in := range c.Instances {
			out = append(out, fmt.Sprintf("%s:%s<%s@%d", in.Name, in.Role, in.Upstream, in.Timeline))
		}
		return out
	}
	cluster := func(ctx context.Context) (api.ClusterView, bool) {
		rr, err := api_.Replication(ctx, "")
		if err != nil || len(rr.Clusters) != 1 {
			return api.ClusterView{}, false
		}
		return rr.Clusters[0], true
	}
	wantTree := func(what string, want ...string) api.ClusterView {
		t.Helper()
		var got api.ClusterView
		waitFor(t, 30*time.Second, what, func(ctx context.Context) (bool, string) {
			c, ok := cluster(ctx)
			got = c
			return ok && slices.Equal(tree(c), want), fmt.Sprint(tree(c))
		})
		return got
	}
	before := wantTree("the chain", "db1:primary<@1", "db1_standby:standby<db1@1", "db1_cascade:standby<db1_standby@1")
	if before.Name != "db1" || before.Split {
		t.Fatalf("cluster %q split %v", before.Name, before.Split)
	}
	// The history has it once the tracker wrote a row after the chain settled.
	time.Sleep(time.Second)
	chainAt := time.Now()
	time.Sleep(time.Second)

	// Promote the standby; the old primary keeps running and takes a write.
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	var promotion api.Event
	waitFor(t, 4*interval+5*time.Second, "the promotion event", func(ctx context.Context) (bool, string) {
		er, err := api_.Events(ctx, client.EventsQuery{Kinds: []string{api.EventPromotion}})
		if err != nil || len(er.Events) == 0 {
			return false, fmt.Sprint(err)
		}
		promotion = er.Events[0]
		return true, ""
	})
	seen := time.Since(promoted)
	t.Logf("promotion event visible through the API %.1f s after pg_ctl promote returned (detected %.1f s after; interval %s)",
		seen.Seconds(), promotion.At.Sub(promoted).Seconds(), interval)
	if promotion.Instance != "db1_standby" || promotion.Details["old_timeline"] != float64(1) || promotion.Details["new_timeline"] != float64(2) ||
		promotion.Details["old_primary"] != "db1" {
		t.Errorf("promotion = %+v", promotion)
	}
	if d := promotion.At.Sub(promoted); d > 2*interval+time.Second {
		t.Errorf("promotion detected %s after pg_ctl promote, more than two collection intervals", d)
	}
	if err := primary.Exec(ctx, "demo", "INSERT INTO orders (payload) VALUES ('written to the old primary')"); err != nil {
		t.Fatal(err)
	}
	split := wantTree("the split brain", "db1:primary<@1", "db1_standby:primary<@2", "db1_cascade:standby<db1_standby@2")
	if !split.Split {
		t.Error("cluster not marked split")
	}
	holders := map[string]bool{}
	for _, sl := range split.Slots {
		holders[sl.Instance] = true
	}
	if !holders["db1"] || !holders["db1_standby"] {
		t.Errorf("both primaries' slots must stay in view: %+v", split.Slots)
	}
	wantEvents(t, api_, api.EventSplitBrain)

	// Rewind the old primary and start it as a standby of the new one.
	if err := primary.RejoinAsStandby(ctx, standby); err != nil {
		t.Fatal(err)
	}
	after := wantTree("the old primary as a standby of the new",
		"db1_standby:primary<@2", "db1:standby<db1_standby@2", "db1_cascade:standby<db1_standby@2")
	if after.Split {
		t.Error("still split")
	}
	wantEvents(t, api_, api.EventSplitBrainResolved, api.EventInstanceRestarted, api.EventStandbyAttached)

	// Before the promotion, the history answers the chain as it was.
	rr, err := api_.ReplicationAt(ctx, chainAt)
	if err != nil || len(rr.Clusters) != 1 || !slices.Equal(tree(rr.Clusters[0]), tree(before)) {
		t.Errorf("?at= before the promotion: %v %+v", err, rr.Clusters)
	}
	h, err := api_.ClusterHistory(ctx, "db1", time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(h.Periods) < 3 || !slices.Equal(h.Periods[0].Primaries, []string{"db1"}) ||
		!slices.Equal(h.Periods[len(h.Periods)-1].Primaries, []string{"db1_standby"}) {
		t.Errorf("primary over time: %v %+v", err, h)
	}

	// The slot db1 held for its standby is gone with the rewind (slot_dropped); a slot whose WAL
	// is removed past max_slot_wal_keep_size is invalidated.
	wantEvents(t, api_, api.EventSlotDropped)
	for _, q := range []string{
		"ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()",
		"SELECT pg_create_physical_replication_slot('doomed', true)",
	} {
		if err := standby.Exec(ctx, "postgres", q); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the slot's creation", func(ctx context.Context) (bool, string) {
		return hasEvent(ctx, api_, api.EventSlotCreated, "doomed"), ""
	})
	waitFor(t, 60*time.Second, "the slot's invalidation", func(ctx context.Context) (bool, string) {
		for _, q := range []string{"INSERT INTO orders (payload) SELECT repeat('x', 1000) FROM generate_series(1, 2000)",
			"SELECT pg_switch_wal()", "CHECKPOINT"} {
			if err := standby.Exec(ctx, "demo", q); err != nil {
				return false, err.Error()
			}
		}
		return hasEvent(ctx, api_, api.EventSlotInvalidated, "doomed"), ""
	})

	// The same through the CLI, as a script reads it.
	env := s.cliEnv(t)
	out, errOut, code := runPgactl(t, 30*time.Second, env, "events", "--kind", "promotion", "-o", "json")
	var er api.EventsResponse
	if code != 0 || json.Unmarshal([]byte(out), &er) != nil || len(er.Events) != 1 {
		t.Errorf("pgactl events: %d %s %s", code, out, errOut)
	}
	out, errOut, code = runPgactl(t, 30*time.Second, env, "replication", "--at", chainAt.UTC().Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "topology at") || !strings.Contains(out, "└ db1_standby") || !strings.Contains(out, "└ db1_cascade") {
		t.Errorf("pgactl replication --at: %d\n%s%s", code, out, errOut)
	}
}

func hasEvent(ctx context.Context, c *client.Client, kind, slot string) bool {
	er, err := c.Events(ctx, client.EventsQuery{Kinds: []string{kind}})
	if err != nil {
		return false
	}
	for _, e := range er.Events {
		if slot == "" || e.Details["slot"] == slot {
			return true
		}
	}
	return false
}

func wantEvents(t *testing.T, c *client.Client, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		waitFor(t, 30*time.Second, "a "+k+" event", func(ctx context.Context) (bool, string) { return hasEvent(ctx, c, k, ""), "" })
	}
}

// apiClient is a client of the stack's API logged in as its admin.
// apiMetric reads one unlabelled series of the API's Prometheus exposition (0 when absent).
func (s *stack) apiMetric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := s.apiClient(t).Do(t.Context(), client.RawRequest{Path: "/metrics"})
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %v %d", err, res.Status)
	}
	for line := range strings.Lines(string(res.Body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

func (s *stack) apiClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: s.env.Vars["PGACTL_API_URL"], CAFile: s.env.Vars["PGACTL_CA_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := c.Login(t.Context(), s.env.Vars["PGACTL_USERNAME"], s.env.Vars["PGACTL_PASSWORD"])
	if err != nil {
		t.Fatal(err)
	}
	return c.WithToken(tp.AccessToken).WithRateLimitRetries(3)
}
