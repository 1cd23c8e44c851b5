package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func sampleTopology(id, name string) api.CollectorTopology {
	safe := int64(3 << 30)
	return api.CollectorTopology{
		CollectorID: id, CollectorName: name, ReceivedAt: time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC),
		Snapshot: api.Snapshot{Clusters: []api.Cluster{{
			SystemIdentifier: "7312345678901234567", Timeline: 1,
			Instances: []api.Instance{
				{Name: "db1", Address: "127.0.0.1:5432", Up: true, Role: "primary", ServerVersion: 150004, WALLSN: "0/3000060"},
				{Name: "db1_standby", Address: "127.0.0.1:5433", Up: true, Role: "standby", ServerVersion: 150004,
					Receiver: &api.WALReceiver{Connected: true, Status: "streaming"}, ReceiveReplayLagBytes: 2048},
			},
			Standbys: []api.Standby{{ApplicationName: "standby1", ClientAddr: "127.0.0.1", State: "catchup", SyncState: "async",
				SentLagBytes: 512, ReplayLagBytes: 16 << 20, ReplayLagSeconds: 1.25, Instance: "db1_standby"}},
			Slots: []api.Slot{{Name: "standby1", Type: "physical", Active: true, RetainedBytes: 48 << 20, WALStatus: "unreserved", SafeWALSizeBytes: &safe}},
		}}},
	}
}

func TestRenderTopologies(t *testing.T) {
	var buf bytes.Buffer
	stale := sampleTopology("c2", "beta")
	stale.Stale = true
	now := time.Date(2026, 2, 27, 15, 0, 30, 0, time.UTC)
	if err := renderTopologies(&buf, []api.CollectorTopology{stale, sampleTopology("c1", "alpha")}, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"collector alpha (c1)  received 2026-02-27T15:00:00Z (30s ago)\n",
		"cluster 7312345678901234567  timeline 1",
		"    db1_standby  standby  127.0.0.1:5433  yes  150004   -          receiver streaming, receive-replay 2.0 KiB, delay ?\n",
		"    standby1  -         db1_standby  127.0.0.1  catchup (!)  async  512 B     16.0 MiB    0.0/0.0/1.2           0.0s\n",
		"catchup (!)", "16.0 MiB", "0.0/0.0/1.2",
		"unreserved (!)", "48.0 MiB", "3.0 GiB",
		"collector beta (c2)", "[STALE: no push within two intervals]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "alpha") > strings.Index(out, "beta") {
		t.Error("collectors must be sorted by name")
	}
	buf.Reset()
	renderTopologies(&buf, nil, now)
	if !strings.Contains(buf.String(), "no topology yet") {
		t.Errorf("empty output: %q", buf.String())
	}
}

// TestRenderClusters: the fleet view is the member tree, a split brain says so, and the collectors'
// freshness follows.
func TestRenderClusters(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	c := api.ClusterView{Cluster: api.Cluster{SystemIdentifier: "73", Name: "orders", Timeline: 2, Split: true,
		Instances: []api.Instance{
			{Name: "db2", Address: "127.0.0.1:5433", Up: true, Role: "primary", Timeline: 2},
			{Name: "db3", Address: "127.0.0.1:5434", Up: true, Role: "standby", Timeline: 2, Upstream: "db2",
				UpstreamLagBytes: lag(1024), Receiver: &api.WALReceiver{Connected: true, Status: "streaming"}},
			{Name: "db1", Address: "127.0.0.1:5432", Up: true, Role: "primary", Timeline: 1},
		},
		Standbys: []api.Standby{{Upstream: "db2", ApplicationName: "db3", Instance: "db3", State: "streaming", SyncState: "async"}},
		Slots:    []api.Slot{{Instance: "db1", Name: "db2", Type: "physical"}, {Instance: "db2", Name: "db3", Type: "physical", Active: true}},
	}}
	var buf bytes.Buffer
	now := time.Date(2026, 2, 27, 15, 0, 30, 0, time.UTC)
	if err := renderClusters(&buf, []api.ClusterView{c}, []api.CollectorTopology{sampleTopology("c1", "alpha")}, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"cluster orders (73)  timeline 2  [SPLIT BRAIN: db2, db1 all answer as primary]\n",
		"    INSTANCE  ROLE     UPSTREAM  TL  LAG TO UPSTREAM  LAG TO PRIMARY  ADDRESS         UP   NOTE\n",
		"    db2       primary  -         2   -                -               127.0.0.1:5433  yes  -\n",
		"    ", "  └ db3",
		"    db1       primary  -         1 ",
		"    db3      db2       db3",
		"    db2   db1       physical  no",
		"collectors\n  alpha (c1)  received 2026-02-27T15:00:00Z (30s ago)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestRenderPatroni: a cluster under Patroni gets a PATRONI column, Patroni's cluster line and
// its disagreements.
func TestRenderPatroni(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	switched := time.Date(2026, 2, 27, 14, 40, 0, 0, time.UTC)
	c := api.ClusterView{Cluster: api.Cluster{SystemIdentifier: "73", Name: "pat", Timeline: 3,
		Instances: []api.Instance{
			{Name: "pat2", Address: "127.0.0.1:5433", Up: true, Role: "primary", Timeline: 3, Patroni: &api.PatroniMember{Name: "pat2"}},
			{Name: "pat1", Address: "127.0.0.1:5432", Role: "unknown", Error: "connection refused", Patroni: &api.PatroniMember{Error: "connection refused"}},
		},
		Patroni: &api.PatroniCluster{Scope: "pat", Leader: "pat2", Paused: true, ReportedBy: "pat2",
			Members: []api.PatroniMember{{Name: "pat2", Role: "leader", State: "running", Timeline: 3, Host: "127.0.0.1", Port: 5433},
				{Name: "pat3", Role: "replica", State: "streaming", Timeline: 3, LagBytes: lag(2048), PendingRestart: true, Host: "127.0.0.1", Port: 5434}},
			History:       []api.PatroniSwitch{{Timeline: 2, At: &switched, NewLeader: "pat2"}},
			Disagreements: []api.PatroniDisagreement{{Instance: "pat1", Code: api.PatroniRunningButDown, Message: "Patroni says pat1 is running; PostgreSQL does not answer"}}},
	}}
	var buf bytes.Buffer
	if err := renderClusters(&buf, []api.ClusterView{c}, nil, switched); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"UP   PATRONI              NOTE\n",
		"yes  leader running tl 3  -\n",
		"no   does not answer (!)  connection refused\n",
		"  patroni pat  leader pat2  [PAUSED: no automatic failover]  not watched: pat3  last switch 2026-02-27T14:40:00Z (timeline 2 → pat2)  via pat2\n",
		"  DISAGREES running_but_down: Patroni says pat1 is running; PostgreSQL does not answer\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-02-27T14:00:00Z", now.Add(-time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"-2h", now.Add(-2 * time.Hour), true},
		{"yesterday", time.Time{}, false},
		{"2026-02-27", time.Time{}, false},
	} {
		got, err := parseWhen(tc.in, now)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestBytesHuman(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", -2048: "-2.0 KiB"} {
		if got := bytesHuman(in); got != want {
			t.Errorf("bytesHuman(%d) = %q, want %q", in, got, want)
		}
	}
}

// replicationAPI serves login, the topology and a stream of two events.
func replicationAPI(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/auth/login" && r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"authentication required"}}`)
			return
		}
		switch r.URL.Path {
		case "/api/v1/auth/login":
			var req api.LoginRequest
			json.NewDecoder(r.Body).Decode(&req)
			if req.Password != "pw" {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"error":{"code":"invalid_credentials","message":"invalid username or password"}}`)
				return
			}
			json.NewEncoder(w).Encode(api.TokenPair{AccessToken: "good", RefreshToken: "r", TokenType: "Bearer", ExpiresIn: 900, Role: "viewer"})
		case "/api/v1/replication":
			resp := api.ReplicationResponse{Collectors: []api.CollectorTopology{sampleTopology("c1", "alpha")}}
			if id := r.URL.Query().Get("collector_id"); id != "" && id != "c1" {
				resp.Collectors = nil
			}
			json.NewEncoder(w).Encode(resp)
		case "/api/v1/replication/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for _, id := range []string{"c2", "c1"} {
				b, _ := json.Marshal(sampleTopology(id, "n-"+id))
				fmt.Fprintf(w, ": heartbeat\n\nevent: topology\ndata: %s\n\n", b)
			}
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cancelAfterLines cancels the command's context once n lines were written.
type cancelAfterLines struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfterLines) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Count(c.buf.String(), "\n") >= c.n {
		c.cancel()
	}
	return len(p), nil
}

func runReplicationCmd(t *testing.T, ctx context.Context, out io.Writer, args ...string) error {
	t.Helper()
	cmd := newReplicationCmd()
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.With(exitcode.Usage, err) })
	return cmd.ExecuteContext(ctx)
}

func TestReplicationCommand(t *testing.T) {
	isolateEnv(t)
	url := replicationAPI(t)
	t.Setenv(client.EnvViewerUsername, "viewer")
	t.Setenv(client.EnvViewerPassword, "pw")

	t.Run("json", func(t *testing.T) {
		var out bytes.Buffer
		if err := runReplicationCmd(t, context.Background(), &out, "--api-url", url, "-o", "json"); err != nil {
			t.Fatal(err)
		}
		var rr api.ReplicationResponse
		if err := json.Unmarshal(out.Bytes(), &rr); err != nil || len(rr.Collectors) != 1 || rr.Collectors[0].CollectorID != "c1" {
			t.Fatalf("output %s: %v", out.String(), err)
		}
	})
	t.Run("table for one collector", func(t *testing.T) {
		var out bytes.Buffer
		if err := runReplicationCmd(t, context.Background(), &out, "--api-url", url, "--collector", "zz"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "no topology yet") {
			t.Errorf("output %q", out.String())
		}
	})
	t.Run("token instead of login", func(t *testing.T) {
		t.Setenv(client.EnvToken, "good")
		t.Setenv(client.EnvViewerPassword, "wrong")
		var out bytes.Buffer
		if err := runReplicationCmd(t, context.Background(), &out, "--api-url", url); err != nil {
			t.Fatal(err)
		}
		if s := out.String(); !strings.Contains(s, "  alpha (c1)  received") || !strings.Contains(s, "cluster db1 (7312345678901234567)") {
			t.Errorf("output %q", s)
		}
	})
	t.Run("watch json follows the stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &cancelAfterLines{n: 3, cancel: cancel}
		if err := runReplicationCmd(t, ctx, out, "--api-url", url, "--watch", "-o", "json"); err != nil {
			t.Fatalf("watch ended with %v, want nil on cancel", err)
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out.buf.String()), "\n") {
			var tp api.CollectorTopology
			if err := json.Unmarshal([]byte(line), &tp); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			ids = append(ids, tp.CollectorID)
		}
		if strings.Join(ids, ",") != "c1,c2,c1" {
			t.Errorf("ids = %v, want the snapshot then both events", ids)
		}
	})
	t.Run("watch table filters by collector", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Two prints of ten lines: the snapshot and c1's event; c2's event (sent first) is filtered out.
		out := &cancelAfterLines{n: 20, cancel: cancel}
		if err := runReplicationCmd(t, ctx, out, "--api-url", url, "--watch", "--collector", "c1"); err != nil {
			t.Fatal(err)
		}
		if s := out.buf.String(); strings.Contains(s, "n-c2") || !strings.Contains(s, "--- ") {
			t.Errorf("output:\n%s", s)
		}
	})

	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"login refused", map[string]string{client.EnvViewerPassword: "wrong"}, []string{"--api-url", url}, exitcode.Auth},
		{"unreachable", nil, []string{"--api-url", closedPortURL(t)}, exitcode.Unreachable},
		{"no credentials", map[string]string{client.EnvViewerUsername: ""}, []string{"--api-url", url}, exitcode.Usage},
		{"bad output", nil, []string{"--api-url", url, "-o", "yaml"}, exitcode.Usage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := runReplicationCmd(t, context.Background(), io.Discard, tt.args...)
			if got := exitCode(err); got != tt.want {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

// TestCommandsWaitOutRateLimits: right after a smoke run spent the budget, the API answers 429
// with Retry-After; a command waits it out instead of failing.
func TestCommandsWaitOutRateLimits(t *testing.T) {
	isolateEnv(t)
	real := replicationAPI(t)
	var limited atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/replication" && limited.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":"rate_limited","message":"rate limit of 100 requests per minute exceeded; retry in 1 s"}}`)
			return
		}
		proxy, _ := http.NewRequestWithContext(r.Context(), r.Method, real+r.URL.RequestURI(), r.Body)
		proxy.Header = r.Header
		resp, err := http.DefaultClient.Do(proxy)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(client.EnvViewerUsername, "viewer")
	t.Setenv(client.EnvViewerPassword, "pw")
	var out bytes.Buffer
	if err := runReplicationCmd(t, context.Background(), &out, "--api-url", srv.URL, "-o", "json"); err != nil {
		t.Fatalf("pgactl replication after a 429: %v", err)
	}
	if limited.Load() < 2 {
		t.Fatalf("the 429 was not retried (%d requests)", limited.Load())
	}
}
