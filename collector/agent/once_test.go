package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/collector/sender"
	"github.com/pganalytics/pganalytics/internal/api"
)

// apiOnlyConfig is a collector pushing to apiURL every second whose one instance is a closed port:
// it is down at once, and every cycle still builds a batch. It returns the config, its spool
// directory and a client for the API.
func apiOnlyConfig(t *testing.T, name, apiURL string) (*config.Config, string, *client.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	doc := fmt.Sprintf(`
[collector]
name = %q
interval = "1s"
[api]
url = %q
token_file = %q
timeout = "1s"
[[postgres]]
name = "gone"
dsn = "postgres://pganalytics@%s/postgres?sslmode=disable"
timeout = "200ms"
[buffer]
spool_dir = %q
`, name, apiURL, filepath.Join(dir, "token"), gone, spool)
	cfg, err := config.Parse("test.toml", []byte(doc), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Options{BaseURL: apiURL, Token: "tok", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, spool, c
}

// spoolSnapshot reads every batch file in dir; only while nothing delivers (the API is down).
func spoolSnapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.batch"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOnceBesideRunningCollector is the e2e repro at the agent level: a collector runs while the
// API answers 503 and spools its batches; `--once` with the same configuration must neither write
// into that spool nor claim success, and once the API is back every spooled batch of the running
// collector arrives, unchanged and in sequence.
func TestOnceBesideRunningCollector(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rec := &pushRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rec.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg, spool, c := apiOnlyConfig(t, "spool-owner", srv.URL)

	daemon, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, c) }()
	waitUntil(t, "the running collector to spool 2 batches", func() bool { return len(spoolSnapshot(t, spool)) >= 2 })
	before := spoolSnapshot(t, spool)

	var logs bytes.Buffer
	once, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = once.Once(context.Background(), c)
	if !errors.Is(err, sender.ErrNotSpooled) || !strings.Contains(err.Error(), "not delivered and not spooled") {
		t.Fatalf("--once beside a running collector with the API down: %v, want ErrNotSpooled", err)
	}
	if strings.Count(logs.String(), "the spool belongs to a running collector") != 1 || !strings.Contains(logs.String(), "pid="+strconv.Itoa(os.Getpid())) {
		t.Errorf("--once log does not name the spool's owner once:\n%s", logs.String())
	}
	// The API is still down: the running collector's files are all there, byte for byte. (It
	// keeps adding its own; a batch of --once would have taken one of their names.)
	after := spoolSnapshot(t, spool)
	for name, data := range before {
		if !bytes.Equal(after[name], data) {
			t.Errorf("spool file %s changed or vanished while --once ran", name)
		}
	}

	down.Store(false)
	// Count, not read: the daemon deletes files as it delivers them.
	waitUntil(t, "the running collector to drain its spool", func() bool {
		left, _ := filepath.Glob(filepath.Join(spool, "*.batch"))
		return len(left) == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every batch the API got is the running collector's: its k-th cycle reports k collections,
	// so a batch of --once (1 collection, out of place) or a lost one breaks the sequence.
	pushes := rec.all()
	slices.SortFunc(pushes, func(a, b api.PushRequest) int { return a.CollectedAt.Compare(b.CollectedAt) })
	if len(pushes) < len(before) {
		t.Fatalf("%d pushes delivered, fewer than the %d batches spooled before --once", len(pushes), len(before))
	}
	for i, p := range pushes {
		if v, _ := findSample(p, "pganalytics_collector_collections_total"); v != float64(i+1) {
			t.Fatalf("push %d (collected %s) reports %v collections, want %d", i, p.CollectedAt, v, i+1)
		}
	}
	q, err := buffer.Open(buffer.Options{Dir: spool})
	if err != nil {
		t.Fatalf("the spool is still held after the collector stopped: %v", err)
	}
	q.Close()
}

// TestOnceRejectedBatchIsAnError: when the API refuses the one-off cycle as malformed, --once says
// so (sender.ErrRejected, exit 1) instead of reporting success; the batch is set aside, not lost.
func TestOnceRejectedBatchIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":"invalid_metric","message":"metrics[0]: bad name"}}`))
	}))
	defer srv.Close()
	cfg, spool, c := apiOnlyConfig(t, "rejected", srv.URL)
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	err = a.Once(context.Background(), c)
	if !errors.Is(err, sender.ErrRejected) {
		t.Fatalf("Once = %v, want sender.ErrRejected", err)
	}
	kept, _ := filepath.Glob(filepath.Join(spool, "rejected", "*"))
	if len(kept) == 0 {
		t.Errorf("the rejected batch was not set aside in %s", filepath.Join(spool, "rejected"))
	}
}
