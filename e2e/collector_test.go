package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/demo"
)

// defaultOutage is how long the API stays down in TestCollectorLosesNothingWhileAPIIsDown: an
// earlier issue's requirement (30 s), short enough for `make test`. PGA_E2E_OUTAGE (a Go duration)
// sets another; `make outage` runs the test with 3m.
const defaultOutage = 30 * time.Second

// maxBacklogDelivery bounds the time from the API's return to the whole backlog being in the store,
// whatever the outage's length: the collector's retry backoff is capped at 5 s (collector/sender),
// and the backlog then goes out without a pause between batches.
const maxBacklogDelivery = 10 * time.Second

// outageLength is PGA_E2E_OUTAGE, or defaultOutage when it is unset.
func outageLength(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("PGA_E2E_OUTAGE")
	if v == "" {
		return defaultOutage
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("PGA_E2E_OUTAGE=%q: want a positive Go duration such as 3m", v)
	}
	return d
}

// TestCollectorLosesNothingWhileAPIIsDown kills the API for 30 s (PGA_E2E_OUTAGE) while the
// collector runs, starts it again, and proves with the store's rows that every cycle the collector
// ran reached the store; it measures how long after the API's return the backlog took to arrive,
// and fails beyond maxBacklogDelivery.
//
// The proof rests on the collector's own count: every batch carries
// pganalytics_collector_collections_total, the instance collections since the collector started
// (instances × cycles). Sorted by collection time, the k-th cycle in the store must report exactly
// k × instances: a missing batch anywhere (before, during or after the outage) breaks the sequence,
// and a duplicate delivery cannot hide one because cycles are counted by distinct timestamp.
func TestCollectorLosesNothingWhileAPIIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the API outage")
	}
	t.Parallel()
	outage := outageLength(t)
	const interval = 2 * time.Second
	s := startStack(t, interval, true)
	s.waitCycles(3)

	killedAt := time.Now()
	s.kill(demo.ProcessAPI, syscall.SIGKILL)
	time.Sleep(outage)
	// With the API down nothing reaches the store: what it holds now was delivered before the outage.
	beforeCtx, cancelBefore := context.WithTimeout(context.Background(), 30*time.Second)
	before, err := s.cycles(beforeCtx)
	cancelBefore()
	if err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	s.restart(demo.ProcessAPI)
	backAt := time.Now() // the API answers its health check again

	// The backlog is on disk (from the outage's first failed push on, every batch is spooled) and
	// the collector removes a spool file once the API has stored its batch, oldest first: it has
	// all arrived when no spool file holds a batch collected before the API came back.
	var delivery time.Duration
	waitFor(t, 2*time.Minute, "the backlog to reach the store", func(context.Context) (bool, string) {
		n, oldest, err := s.oldestSpooled()
		if err != nil {
			return false, err.Error()
		}
		if n == 0 || !oldest.Before(backAt) {
			delivery = time.Since(backAt)
			return true, ""
		}
		return false, fmt.Sprintf("%d batches spooled, the oldest collected %s before the API came back", n, backAt.Sub(oldest).Round(time.Millisecond))
	})

	// Delivery is oldest first, so once a batch collected after the restart is in the store every
	// older one has been delivered (or is missing for good, which the checks below catch); the
	// spool must be empty too.
	waitFor(t, 2*time.Minute, "the collector to drain its buffer", func(ctx context.Context) (bool, string) {
		cs, err := s.cycles(ctx)
		if err != nil {
			return false, err.Error()
		}
		spooled, err := s.spoolFiles()
		if err != nil {
			return false, err.Error()
		}
		after := len(cs) > 0 && cs[len(cs)-1].at.After(restartedAt)
		return after && len(spooled) == 0, fmt.Sprintf("%d cycles in the store, newest after the restart: %t, %d batches spooled", len(cs), after, len(spooled))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cycles, err := s.cycles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.assertNoCycleLost(t, ctx)

	// The issue's own measure agrees: one distinct cycle_seconds timestamp per cycle.
	var distinct int
	if err := s.store.QueryRow(ctx, `
		SELECT count(DISTINCT timestamp)
		FROM metrics
		WHERE collector_id = $1 AND name = 'pganalytics_collector_cycle_seconds'`, s.collectorID).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != len(cycles) {
		t.Errorf("%d distinct pganalytics_collector_cycle_seconds timestamps, but %d cycles reported collections", distinct, len(cycles))
	}

	// The collector kept collecting while the API was away. Its ticker fires every interval, so
	// the window holds at least ⌊window/interval⌋ ticks; one may be pushed past the window's end
	// by scheduling on a loaded machine.
	var during, backlog int
	for _, c := range cycles {
		if c.at.After(killedAt) && c.at.Before(restartedAt) {
			during++
		}
		if c.at.Before(backAt) {
			backlog++
		}
	}
	backlog -= len(before)
	window := restartedAt.Sub(killedAt)
	if want := int(window/interval) - 1; during < want {
		t.Errorf("%d cycles collected during the %s outage, want at least %d", during, window.Round(time.Millisecond), want)
	}

	var pushFailures, dropped float64
	if err := s.store.QueryRow(ctx, `
		SELECT coalesce(max(value) FILTER (WHERE name = 'pganalytics_collector_push_failures_total'), 0),
		       coalesce(max(value) FILTER (WHERE name = 'pganalytics_collector_buffer_dropped_total'), 0)
		FROM metrics
		WHERE collector_id = $1`, s.collectorID).Scan(&pushFailures, &dropped); err != nil {
		t.Fatal(err)
	}
	if pushFailures == 0 {
		t.Errorf("the collector reported no failed push: the API outage went unnoticed")
	}
	if dropped != 0 {
		t.Errorf("the collector reported %v dropped batches", dropped)
	}
	if rejected, err := s.rejectedFiles(); err != nil || len(rejected) > 0 {
		t.Errorf("rejected batches: %v (err %v)", rejected, err)
	}
	// The collector sends the series it was handed ids for by id, the backlog after the restart too.
	if byID := s.apiMetric(t, "pganalytics_api_ingest_samples_by_id_total"); byID == 0 {
		t.Errorf("the restarted API took no samples by series id")
	}
	t.Logf("%d cycles in the store, %d of them during the %s outage, %v failed push attempts, all delivered",
		len(cycles), during, window.Round(time.Millisecond), pushFailures)
	t.Logf("backlog of %d batches delivered %.1f s after the API came back (outage %s, the API's restart %.1f s, polled every 250 ms)",
		backlog, delivery.Seconds(), outage, backAt.Sub(restartedAt).Seconds())
	if delivery > maxBacklogDelivery {
		t.Errorf("the backlog of %d batches took %.1f s after the API came back, want at most %s", backlog, delivery.Seconds(), maxBacklogDelivery)
	}
}

// oldestSpooled returns how many batches wait in the collector's spool and when the oldest was
// collected. Spool files are named by sequence, so the first name is the oldest; one the collector
// removes while this looks (delivered) is skipped.
func (s *stack) oldestSpooled() (int, time.Time, error) {
	files, err := s.spoolFiles()
	if err != nil {
		return 0, time.Time{}, err
	}
	for i, f := range files {
		at, err := spooledCollectedAt(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("spool file %s: %w", filepath.Base(f), err)
		}
		return len(files) - i, at, nil
	}
	return 0, time.Time{}, nil
}

// TestCollectorDeliversSpoolAfterKill9 stops the API, lets batches pile up in the collector's spool,
// kills the collector with SIGKILL, and proves that the batches on disk are delivered with their
// original timestamps once the API and a new collector process are back, and that the spool empties.
func TestCollectorDeliversSpoolAfterKill9(t *testing.T) {
	t.Parallel()
	const (
		interval = 2 * time.Second
		batches  = 4
	)
	s := startStack(t, interval, false)
	s.waitCycles(2)

	s.kill(demo.ProcessAPI, syscall.SIGTERM)
	waitFor(t, time.Duration(batches+10)*interval, fmt.Sprintf("%d batches in the spool", batches), func(context.Context) (bool, string) {
		files, err := s.spoolFiles()
		if err != nil {
			return false, err.Error()
		}
		return len(files) >= batches, fmt.Sprintf("%d spool files", len(files))
	})
	s.kill(demo.ProcessCollector, syscall.SIGKILL)

	files, err := s.spoolFiles()
	if err != nil {
		t.Fatal(err)
	}
	spooled := make([]time.Time, 0, len(files))
	for _, f := range files {
		at, err := spooledCollectedAt(f)
		if err != nil {
			t.Fatalf("spool file %s: %v", filepath.Base(f), err)
		}
		spooled = append(spooled, at)
	}
	if len(spooled) < batches {
		t.Fatalf("%d batches on disk after kill -9, want at least %d", len(spooled), batches)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Only the push in flight when the API stopped may have landed and still be spooled (its answer
	// lost: delivery is at least once); every other spooled batch must be absent from the store.
	delivered := 0
	for _, at := range spooled {
		n, err := s.cyclesAt(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			delivered++
		}
	}
	if delivered > 1 {
		t.Fatalf("%d of the %d spooled batches are already in the store although the API was down", delivered, len(spooled))
	}

	s.restart(demo.ProcessAPI)
	s.restart(demo.ProcessCollector)
	waitFor(t, 2*time.Minute, "the spooled batches to reach the store and the spool to empty", func(ctx context.Context) (bool, string) {
		missing := 0
		for _, at := range spooled {
			n, err := s.cyclesAt(ctx, at)
			if err != nil {
				return false, err.Error()
			}
			if n == 0 {
				missing++
			}
		}
		left, err := s.spoolFiles()
		if err != nil {
			return false, err.Error()
		}
		return missing == 0 && len(left) == 0, fmt.Sprintf("%d of %d spooled batches not in the store, %d files in the spool", missing, len(spooled), len(left))
	})
	if rejected, err := s.rejectedFiles(); err != nil || len(rejected) > 0 {
		t.Errorf("rejected batches: %v (err %v)", rejected, err)
	}
	t.Logf("%d batches spooled before kill -9, all delivered with their collection time after the restart", len(spooled))
}

// cyclesAt counts the collector's pganalytics_collector_cycle_seconds samples collected at at.
// The store keeps microseconds and the spool nanoseconds; cycles are seconds apart, so a
// millisecond either way names one cycle only.
func (s *stack) cyclesAt(ctx context.Context, at time.Time) (int, error) {
	var n int
	err := s.store.QueryRow(ctx, `
		SELECT count(*)
		FROM metrics
		WHERE collector_id = $1 AND name = 'pganalytics_collector_cycle_seconds'
		  AND timestamp BETWEEN $2 AND $3`, s.collectorID, at.Add(-time.Millisecond), at.Add(time.Millisecond)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("look up the cycle of %s: %w", at.Format(time.RFC3339Nano), err)
	}
	return n, nil
}

// spooledCollectedAt decodes a spool file (collector/buffer's format, docs/collector.md) and returns
// the collection time of the push request inside.
func spooledCollectedAt(path string) (time.Time, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	b, err := buffer.Decode(raw)
	if err != nil {
		return time.Time{}, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b.Body))
	if err != nil {
		return time.Time{}, fmt.Errorf("gunzip: %w", err)
	}
	var req api.PushRequest
	if err := json.NewDecoder(zr).Decode(&req); err != nil {
		return time.Time{}, fmt.Errorf("decode push request: %w", err)
	}
	if req.CollectedAt.IsZero() || len(req.Metrics) == 0 {
		return time.Time{}, fmt.Errorf("push request without collection time or samples")
	}
	return req.CollectedAt, nil
}

// TestCollectorAppliesStoredConfig: an admin stores a longer interval and turns the replication
// families off (PUT /api/v1/config/{id}); the collector, once it reads it (at start), says so and
// collects at the new interval; a shorter interval than its file's is refused (the file is the floor).
func TestCollectorAppliesStoredConfig(t *testing.T) {
	t.Parallel()
	const local = time.Second
	s := startStack(t, local, false)
	s.waitCycles(2)
	c := s.apiClient(t)
	if _, err := c.PutConfig(t.Context(), api.CollectorConfig{CollectorID: s.collectorID, IntervalSeconds: 3, PgReplicationEnabled: false, QueryTimeoutSeconds: 2}); err != nil {
		t.Fatalf("PUT /api/v1/config: %v", err)
	}
	s.kill(demo.ProcessCollector, syscall.SIGTERM)
	s.restart(demo.ProcessCollector)
	logFile := filepath.Join(s.dir(), "collector.log")
	waitFor(t, 30*time.Second, "the collector to apply the stored configuration", func(context.Context) (bool, string) {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `msg="configuration from the API applied" collector=demo-collector interval=3s was=1s pg_replication=false query_timeout=2s`), "no such line yet"
	})
	restarted := time.Now()
	waitFor(t, time.Minute, "three cycles at the stored interval", func(ctx context.Context) (bool, string) {
		cycles, err := s.cycles(ctx)
		if err != nil {
			return false, err.Error()
		}
		var after []time.Time
		for _, cy := range cycles {
			if cy.at.After(restarted) {
				after = append(after, cy.at)
			}
		}
		if len(after) < 3 {
			return false, fmt.Sprintf("%d cycles since", len(after))
		}
		for i := 1; i < len(after); i++ {
			if gap := after[i].Sub(after[i-1]); gap < 2500*time.Millisecond {
				t.Fatalf("cycles %s apart after the stored 3s interval was applied", gap)
			}
		}
		return true, ""
	})
}
