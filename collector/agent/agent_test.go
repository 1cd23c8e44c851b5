package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// silentServer accepts connections and never answers: the worst kind of dead instance.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

func monitorDSN(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	u, err := url.Parse(c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("pganalytics")
	return u.String()
}

// pushRecorder is a fake API that keeps every decoded push.
type pushRecorder struct {
	mu     sync.Mutex
	pushes []api.PushRequest
}

func (p *pushRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, "not gzip", http.StatusBadRequest)
		return
	}
	var req api.PushRequest
	if err := json.NewDecoder(zr).Decode(&req); err != nil {
		http.Error(w, "not json", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.pushes = append(p.pushes, req)
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d}`, len(req.Metrics))
}

func (p *pushRecorder) all() []api.PushRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]api.PushRequest(nil), p.pushes...)
}

func findSample(req api.PushRequest, name string, kv ...string) (float64, bool) {
	for _, s := range req.Metrics {
		if s.Name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			ok = ok && s.Labels[kv[i]] == kv[i+1]
		}
		if ok {
			return s.Value, true
		}
	}
	return 0, false
}

// TestAgent runs the whole collector against a primary, its standby and an instance that never
// answers: topology join, self metrics, dry run, --once and a graceful shutdown.
func TestAgent(t *testing.T) {
	p, s := pgtest.StartPrimaryStandby(t)
	p.Exec(t, "CREATE ROLE pganalytics WITH LOGIN NOINHERIT; GRANT pg_monitor TO pganalytics")
	dir := t.TempDir()
	silent := silentServer(t)
	rec := &pushRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	doc := fmt.Sprintf(`
[collector]
name = "test-collector"
interval = "1s"
[api]
url = %q
token_file = %q
[[postgres]]
name = "primary"
dsn = %q
[[postgres]]
name = "standby"
dsn = %q
[[postgres]]
name = "silent"
dsn = "postgres://pganalytics@%s/postgres?sslmode=disable"
timeout = "400ms"
[buffer]
spool_dir = %q
`, srv.URL, filepath.Join(dir, "token"), monitorDSN(t, p), monitorDSN(t, s), silent, filepath.Join(dir, "spool"))
	cfg, err := config.Parse("test.toml", []byte(doc), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	// The role reaches the standby by replication.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := s.Pool(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = 'pganalytics'").Scan(&n)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("role never replicated")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := client.New(client.Options{BaseURL: srv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("cycle and topology", func(t *testing.T) {
		a, err := New(cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(context.Background())
		states, at := a.Cycle(context.Background())
		byName := map[string]time.Duration{}
		for _, st := range states {
			byName[st.Name] = st.Duration
		}
		// The dead instance costs its own timeout; the live ones are read without waiting on it.
		if byName["silent"] < 400*time.Millisecond || byName["primary"] >= 400*time.Millisecond || byName["standby"] >= 400*time.Millisecond {
			t.Errorf("durations = %v", byName)
		}
		req := a.Batch(states, at, time.Since(at), BufferStats{Utilization: 0.25, Dropped: 3})
		if v, ok := findSample(req, "pg_up", "instance", silent); !ok || v != 0 {
			t.Errorf("pg_up{silent} = %v, %v", v, ok)
		}
		if v, ok := findSample(req, "pg_up", "instance", cfg.Postgres[0].Address()); !ok || v != 1 {
			t.Errorf("pg_up{primary} = %v, %v", v, ok)
		}
		for name, want := range map[string]float64{
			"pganalytics_collector_buffer_utilization_ratio":  0.25,
			"pganalytics_collector_buffer_dropped_total":      3,
			"pganalytics_collector_collections_total":         3,
			"pganalytics_collector_collection_failures_total": 1,
		} {
			if v, ok := findSample(req, name); !ok || v != want {
				t.Errorf("%s = %v (found %v), want %v", name, v, ok, want)
			}
		}
		if st := req.Status; st.Instances != 3 || st.CollectionFailuresTotal != 1 || st.BufferDroppedTotal != 3 || st.IntervalSeconds != 1 {
			t.Errorf("status = %+v", st)
		}
		snap := req.Snapshot
		if len(snap.Clusters) != 2 {
			t.Fatalf("clusters = %+v", snap.Clusters)
		}
		cl := snap.Clusters[0]
		if cl.SystemIdentifier == "" || len(cl.Instances) != 2 || cl.Instances[0].Role != "primary" || cl.Instances[1].Role != "standby" {
			t.Errorf("cluster = %+v", cl)
		}
		if len(cl.Standbys) != 1 || cl.Standbys[0].Instance != "standby" || cl.Standbys[0].ApplicationName != pgtest.StandbyName || cl.Standbys[0].State != "streaming" {
			t.Errorf("standbys = %+v", cl.Standbys)
		}
		if cl.Instances[1].Receiver == nil || !cl.Instances[1].Receiver.Connected || cl.Instances[1].Receiver.SlotName != pgtest.StandbyName {
			t.Errorf("standby's own view = %+v", cl.Instances[1])
		}
		if dead := snap.Clusters[1]; dead.Instances[0].Name != "silent" || dead.Instances[0].Up {
			t.Errorf("dead instance cluster = %+v", dead)
		}
		body, err := Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		zr, _ := gzip.NewReader(bytes.NewReader(body))
		var back api.PushRequest
		if err := json.NewDecoder(zr).Decode(&back); err != nil || len(back.Metrics) != len(req.Metrics) {
			t.Errorf("round trip: %v, %d metrics", err, len(back.Metrics))
		}
	})

	t.Run("dry run", func(t *testing.T) {
		a, err := New(cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(context.Background())
		var out bytes.Buffer
		res := a.DryRun(context.Background(), &out)
		if res.Unreachable != 1 || res.InstancesCollected != 2 || res.MissingPrivileges != 0 || res.FailedFamilies != 0 {
			t.Errorf("result = %+v\n%s", res, out.String())
		}
		for _, want := range []string{"== primary", "== standby", "== silent", "UNREACHABLE", "METRIC", "pg_replication_replay_lag_bytes",
			"pg_wal_receiver_connected", "SET ROLE pg_monitor", "nothing was pushed"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("dry run output lacks %q", want)
			}
		}
		if len(rec.all()) != 0 {
			t.Error("dry run pushed")
		}
	})

	t.Run("once", func(t *testing.T) {
		a, err := New(cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Once(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if got := rec.all(); len(got) != 1 || got[0].Snapshot == nil || got[0].Status == nil {
			t.Fatalf("pushes = %d", len(got))
		}
	})

	t.Run("run then SIGTERM", func(t *testing.T) {
		a, err := New(cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		before := len(rec.all())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, c) }()
		for len(rec.all()) < before+2 {
			time.Sleep(20 * time.Millisecond)
		}
		stopAt := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of cancellation")
		}
		t.Logf("shutdown took %s", time.Since(stopAt))
		pushes := rec.all()
		for i := 1; i < len(pushes); i++ {
			if !pushes[i].CollectedAt.After(pushes[i-1].CollectedAt) {
				t.Errorf("push %d collected at %v, not after %v", i, pushes[i].CollectedAt, pushes[i-1].CollectedAt)
			}
		}
		if entries, _ := filepath.Glob(filepath.Join(dir, "spool", "*.batch")); len(entries) != 0 {
			t.Errorf("batches left in the spool with the API up: %v", entries)
		}
	})
}

func TestRegister(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sub", "collector.token")
	var gotSecret string
	var gotReq api.RegisterRequest
	r := registrarFunc(func(_ context.Context, secret string, req api.RegisterRequest) (api.RegisterResponse, error) {
		gotSecret, gotReq = secret, req
		return api.RegisterResponse{CollectorID: "c1", Token: "jwt.token.value", Name: req.Name}, nil
	})
	if _, err := Register(context.Background(), r, "s3cret", "col", "host", tokenFile, false); err != nil {
		t.Fatal(err)
	}
	if gotSecret != "s3cret" || gotReq.Name != "col" || gotReq.Hostname != "host" {
		t.Errorf("registered with %q %+v", gotSecret, gotReq)
	}
	info, err := os.Stat(tokenFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v", info.Mode(), err)
	}
	if tok, err := ReadToken(tokenFile); err != nil || tok != "jwt.token.value" {
		t.Errorf("ReadToken = %q, %v", tok, err)
	}
	if _, err := Register(context.Background(), r, "s3cret", "col", "host", tokenFile, false); err == nil {
		t.Error("overwrote an existing token without --force")
	}
	if _, err := Register(context.Background(), r, "s3cret", "col", "host", tokenFile, true); err != nil {
		t.Errorf("--force: %v", err)
	}
	if _, err := Register(context.Background(), r, "  ", "col", "host", filepath.Join(dir, "t2"), false); err == nil {
		t.Error("registered with an empty secret")
	}
}

func TestReadSecretAndToken(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("from-file\n"), 0o600)
	tests := []struct {
		name, file, env, want string
		wantErr               bool
	}{
		{"env", "", "from-env", "from-env", false},
		{"file wins", secretFile, "from-env", "from-file", false},
		{"neither", "", "", "", true},
		{"missing file", filepath.Join(dir, "nope"), "x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadSecret(tt.file, tt.env)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ReadSecret = %q, %v", got, err)
			}
		})
	}
	bad := filepath.Join(dir, "bad-token")
	os.WriteFile(bad, []byte("two words\n"), 0o600)
	if _, err := ReadToken(bad); err == nil {
		t.Error("accepted a malformed token")
	}
	if _, err := ReadToken(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "pganalytics register") {
		t.Errorf("missing token error = %v", err)
	}
}

type registrarFunc func(context.Context, string, api.RegisterRequest) (api.RegisterResponse, error)

func (f registrarFunc) Register(ctx context.Context, secret string, req api.RegisterRequest) (api.RegisterResponse, error) {
	return f(ctx, secret, req)
}
