// Package agent runs the collector: a cycle every interval collects every instance concurrently
// (each on its own goroutine with its own timeout), builds one push batch (samples, topology
// snapshot, collector status), queues it, and a sender delivers the queue to the API.
package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/collector/pgmetrics"
	"github.com/pganalytics/pganalytics/collector/sender"
	"github.com/pganalytics/pganalytics/collector/snapshot"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
)

// Shutdown budget after SIGTERM: the running cycle is cut at cycleGrace, delivery attempts stop at
// flushGrace, then memory is spilled to disk. Together well under systemd's stop timeout and the
// 10 s the collector promises.
const (
	cycleGrace = 5 * time.Second
	flushGrace = 7 * time.Second
)

// Agent collects the configured instances. Cycle is called from one goroutine at a time.
type Agent struct {
	cfg     *config.Config
	targets []*pgmetrics.Target
	log     *slog.Logger
	every   int64 // replication families run every this many cycles (0: disabled)

	cycles      int64
	collections int64
	failures    int64
	lastErr     map[string]string // per instance, to log a failure when it starts and when it ends

	collectorID   string          // from the token, to read the stored configuration; "" reads none
	localTimeouts []time.Duration // each instance's timeout from the local file
	current       settings        // the interval and families in force (the local file merged with the API's)
	warnedFloor   bool
}

// SetCollectorID names the collector, so that Run reads and applies its configuration as stored
// by the API (see CollectorIDFromToken).
func (a *Agent) SetCollectorID(id string) { a.collectorID = id }

// New prepares targets for every [[postgres]] table; nothing connects yet.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, lastErr: map[string]string{}}
	for _, p := range cfg.Postgres {
		t, err := pgmetrics.NewTarget(p, log)
		if err != nil {
			return nil, err
		}
		a.targets = append(a.targets, t)
		a.localTimeouts = append(a.localTimeouts, p.Timeout.D())
	}
	if cfg.PgReplication.Enabled {
		a.every = int64(cfg.PgReplication.Interval.D() / cfg.Collector.Interval.D())
	}
	a.current = settings{interval: cfg.Collector.Interval.D(), replication: cfg.PgReplication.Enabled}
	return a, nil
}

// Close ends every database session.
func (a *Agent) Close(ctx context.Context) {
	for _, t := range a.targets {
		t.Close(ctx)
	}
}

// Cycle collects every instance concurrently. A slow or dead instance costs only its own timeout:
// the others' values are read at their own pace and never wait on it.
func (a *Agent) Cycle(ctx context.Context) ([]*pgmetrics.State, time.Time) {
	start := time.Now().UTC()
	replication := a.every > 0 && a.cycles%a.every == 0
	a.cycles++
	states := make([]*pgmetrics.State, len(a.targets))
	var wg sync.WaitGroup
	for i, t := range a.targets {
		wg.Go(func() { states[i] = t.Collect(ctx, replication) })
	}
	wg.Wait()
	for _, st := range states {
		a.account(st)
	}
	return states, start
}

// account counts a collection and logs failures when they appear, change or clear.
func (a *Agent) account(st *pgmetrics.State) {
	a.collections++
	var sig string
	switch {
	case !st.Up:
		sig = "down: " + st.Err.Error()
	case len(st.Failures) > 0:
		errs := make([]error, len(st.Failures))
		for i, f := range st.Failures {
			errs[i] = f
		}
		sig = errors.Join(errs...).Error()
	}
	if sig != "" {
		a.failures++
	}
	prev := a.lastErr[st.Name]
	switch {
	case sig != "" && sig != prev:
		a.log.Warn("collection failed", "instance", st.Name, "address", st.Address, "err", sig)
	case sig == "" && prev != "":
		a.log.Info("collection recovered", "instance", st.Name)
	}
	a.lastErr[st.Name] = sig
}

// BufferStats is what the push batch reports about buffering (zero in --dry-run).
type BufferStats struct {
	Utilization  float64
	Dropped      int64
	Queued       int
	PushFailures int64
	Rejected     int64
}

// Batch assembles one push request from a cycle.
func (a *Agent) Batch(states []*pgmetrics.State, at time.Time, cycle time.Duration, buf BufferStats) api.PushRequest {
	var samples []api.Sample
	for _, st := range states {
		samples = append(samples, st.Samples()...)
	}
	self := func(name string, v float64, kv ...string) {
		s := api.Sample{Name: name, Value: v, Timestamp: at}
		if len(kv) == 2 {
			s.Labels = map[string]string{kv[0]: kv[1]}
		}
		samples = append(samples, s)
	}
	self("pganalytics_collector_cycle_seconds", cycle.Seconds())
	self("pganalytics_collector_collections_total", float64(a.collections))
	self("pganalytics_collector_collection_failures_total", float64(a.failures))
	self("pganalytics_collector_buffer_utilization_ratio", buf.Utilization)
	self("pganalytics_collector_buffer_dropped_total", float64(buf.Dropped))
	self("pganalytics_collector_buffer_queued_batches", float64(buf.Queued))
	self("pganalytics_collector_push_failures_total", float64(buf.PushFailures))
	self("pganalytics_collector_rejected_batches_total", float64(buf.Rejected))
	// The collector's own footprint, for the runbook's performance check (< 10 % CPU, < 200 MB).
	if proc, err := procfs.Self(); err == nil {
		if stat, err := proc.Stat(); err == nil {
			self("pganalytics_collector_process_cpu_seconds_total", stat.CPUTime())
			self("pganalytics_collector_process_resident_memory_bytes", float64(stat.ResidentMemory()))
		}
	}
	for _, st := range states {
		self("pganalytics_collector_instance_collect_seconds", st.Duration.Seconds(), "instance", st.Address)
	}
	snap := snapshot.Build(at, states)
	return api.PushRequest{
		CollectedAt: at,
		Metrics:     samples,
		Snapshot:    &snap,
		Status: &api.CollectorStatus{
			Version:                 buildinfo.String(),
			Hostname:                a.cfg.Collector.Hostname,
			Instances:               len(a.targets),
			IntervalSeconds:         a.current.interval.Seconds(),
			CycleSeconds:            cycle.Seconds(),
			BufferUtilization:       buf.Utilization,
			BufferDroppedTotal:      buf.Dropped,
			CollectionFailuresTotal: a.failures,
			CollectionsTotal:        a.collections,
		},
	}
}

// Encode is the gzip JSON body of a push.
func Encode(req api.PushRequest) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(req); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	return buf.Bytes(), nil
}

// pipeline is a running queue and sender.
type pipeline struct {
	q *buffer.Queue
	s *sender.Sender
}

// openPipeline takes the spool. For a one-off run (--once) a spool held by a running collector is
// not an error: the batch goes from memory straight to the API and the holder's spool is left alone.
func openPipeline(cfg *config.Config, p sender.Pusher, log *slog.Logger, oneOff bool) (*pipeline, error) {
	opts := buffer.Options{
		Dir:              cfg.Buffer.SpoolDir,
		MemoryMaxBytes:   cfg.Buffer.MemoryMaxBytes,
		DiskMaxBytes:     cfg.Buffer.DiskMaxBytes,
		RejectedMaxBytes: cfg.Buffer.RejectedMaxBytes,
		Log:              log,
	}
	q, err := buffer.Open(opts)
	if inUse, ok := errors.AsType[*buffer.InUseError](err); ok && oneOff {
		log.Info("the spool belongs to a running collector: this one-off cycle is pushed directly and not spooled",
			"spool", inUse.Dir, "pid", inUse.PID)
		q, err = buffer.NewMemory(opts), nil
	}
	if err != nil {
		return nil, err
	}
	return &pipeline{q: q, s: sender.New(q, p, sender.Options{Log: log})}, nil
}

func (pl *pipeline) stats() BufferStats {
	qs, ss := pl.q.Stats(), pl.s.Stats()
	return BufferStats{Utilization: qs.Utilization, Dropped: qs.Dropped, Queued: qs.MemoryBatches + qs.DiskBatches,
		PushFailures: ss.Failures, Rejected: qs.Rejected}
}

// collectAndQueue runs one cycle and queues its batch.
func (a *Agent) collectAndQueue(ctx context.Context, pl *pipeline) error {
	states, at := a.Cycle(ctx)
	cycle := time.Since(at)
	body, err := Encode(a.Batch(states, at, cycle, pl.stats()))
	if err != nil {
		return err
	}
	if err := pl.q.Push(body, at); err != nil {
		return fmt.Errorf("queue batch: %w", err)
	}
	a.log.Debug("cycle done", "took", cycle.Round(time.Microsecond), "batch_bytes", len(body), "queued", pl.q.Len())
	return nil
}

// Run collects every interval and delivers through p until ctx ends (SIGTERM): then the running
// cycle finishes (cut after cycleGrace), the queue is flushed until flushGrace, the rest is spilled
// to disk, and Run returns nil. It returns sender.ErrUnauthorized when the token is refused.
func (a *Agent) Run(ctx context.Context, p sender.Pusher) error {
	pl, err := openPipeline(a.cfg, p, a.log, false)
	if err != nil {
		return err
	}
	// The cycle's own context outlives the signal by cycleGrace, so a cycle in flight finishes.
	cycleCtx, cancelCycle := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCycle()
	signalled := make(chan time.Time, 1)
	stopAfter := context.AfterFunc(ctx, func() {
		signalled <- time.Now()
		time.AfterFunc(cycleGrace, cancelCycle)
	})
	defer stopAfter()

	sendCtx, stopSend := context.WithCancel(ctx)
	sendErr := make(chan error, 1)
	go func() { sendErr <- pl.s.Run(sendCtx) }()

	local := a.current
	interval := local.interval
	a.log.Info("collector started", "instances", len(a.targets), "interval", interval, "api", a.cfg.API.URL,
		"spool", a.cfg.Buffer.SpoolDir, "version", buildinfo.String())
	src, remote := p.(ConfigSource)
	remote = remote && a.collectorID != ""
	var refreshed time.Time
	if remote {
		interval, refreshed = a.refreshConfig(ctx, src, local), time.Now()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var fatal error
	for {
		if err := a.collectAndQueue(cycleCtx, pl); err != nil {
			a.log.Error("cycle", "err", err)
		}
		if remote && time.Since(refreshed) >= configRefresh {
			if next := a.refreshConfig(ctx, src, local); next != interval {
				interval = next
				ticker.Reset(interval)
			}
			refreshed = time.Now()
		}
		select {
		case <-ctx.Done():
		case err := <-sendErr:
			fatal = err
		case <-ticker.C:
			continue
		}
		break
	}
	// The budget counts from the signal, not from the end of the cycle it interrupted.
	shutdownStart := time.Now()
	select {
	case shutdownStart = <-signalled:
	default:
	}
	stopSend()
	if fatal == nil {
		fatal = <-sendErr
	}
	if fatal == nil {
		flushCtx, cancel := context.WithDeadline(context.Background(), shutdownStart.Add(flushGrace))
		if err := pl.s.Flush(flushCtx); err != nil {
			a.log.Warn("shutdown: not everything was delivered; the rest stays in the spool", "err", err)
		}
		cancel()
	}
	if err := pl.q.Close(); err != nil {
		a.log.Error("spill queue to disk", "err", err)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	a.Close(closeCtx)
	cancel()
	a.log.Info("collector stopped", "queued", pl.q.Len(), "took", time.Since(shutdownStart).Round(time.Millisecond))
	return fatal
}

// Once collects one cycle and delivers it along with anything spooled before. Undelivered batches
// stay in the spool; a batch the API refuses as malformed is an error (sender.ErrRejected). Beside a running collector, which owns the spool, only this cycle is pushed,
// from memory; if that fails the error matches sender.ErrNotSpooled.
func (a *Agent) Once(ctx context.Context, p sender.Pusher) error {
	pl, err := openPipeline(a.cfg, p, a.log, true)
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	if err := a.collectAndQueue(ctx, pl); err != nil {
		return err
	}
	flushCtx, cancel := context.WithTimeout(ctx, 3*a.cfg.API.Timeout.D())
	defer cancel()
	rejectedBefore := pl.s.Stats().Rejected
	err = pl.s.Flush(flushCtx)
	if n := pl.s.Stats().Rejected - rejectedBefore; err == nil && n > 0 {
		err = fmt.Errorf("%d batch(es): %w (see the collector log)", n, sender.ErrRejected)
	}
	return errors.Join(err, pl.q.Close())
}
