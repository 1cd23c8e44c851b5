// Package remotewrite forwards every ingested sample to Prometheus remote-write receivers
// (Prometheus itself, Mimir, Thanos Receive, VictoriaMetrics, …), so that a fleet that outgrows one
// PostgreSQL keeps its history in a distributed TSDB. Each receiver has its own bounded queue and
// sender: ingest only appends to the queues and never waits; a full queue drops (and counts) the
// samples; a failed batch is retried with backoff as long as the receiver may accept it later.
package remotewrite

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/wait"
)

// Endpoint is one receiver.
type Endpoint struct {
	URL           string
	Headers       map[string]string // e.g. X-Scope-OrgID; Authorization from a bearer token or basic auth
	TLS           *tls.Config       // nil: the system roots
	Timeout       time.Duration     // per request (default 30s)
	QueueSamples  int               // queue capacity (default 100,000)
	BatchSamples  int               // samples per request (default 2,000)
	FlushInterval time.Duration     // a partial batch waits at most this long (default 1s)
	MaxBackoff    time.Duration     // retry delay cap (default 30s)
}

// Defaults of Endpoint's zero fields.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultQueueSamples  = 100_000
	DefaultBatchSamples  = 2_000
	DefaultFlushInterval = time.Second
	DefaultMaxBackoff    = 30 * time.Second
)

// CollectorLabel is the label every forwarded series carries: the collector that pushed it, as the
// store keys its rows.
const CollectorLabel = "collector_id"

// Forwarder sends to every endpoint.
type Forwarder struct {
	queues []*queue
}

type metrics struct {
	samples *prometheus.CounterVec // by url, outcome
	queued  *prometheus.GaugeVec
	retries *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New builds a forwarder; its senders start with Run. reg receives its metrics.
func New(endpoints []Endpoint, reg prometheus.Registerer, log *slog.Logger) (*Forwarder, error) {
	m := &metrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_remote_write_samples_total",
			Help: "Samples forwarded to a remote-write receiver, by outcome: sent, dropped_queue_full (ingest outran the receiver), dropped_rejected (the receiver refused them for good).",
		}, []string{"url", "outcome"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pganalytics_api_remote_write_queue_samples",
			Help: "Samples waiting to be sent to a remote-write receiver.",
		}, []string{"url"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_remote_write_retries_total",
			Help: "Batches sent again after a network failure, a 5xx or a 429.",
		}, []string{"url"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pganalytics_api_remote_write_request_duration_seconds",
			Help:    "Remote-write requests, by receiver.",
			Buckets: prometheus.DefBuckets,
		}, []string{"url"}),
	}
	for _, c := range []prometheus.Collector{m.samples, m.queued, m.retries, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("remote write metrics: %w", err)
		}
	}
	f := &Forwarder{}
	for _, e := range endpoints {
		if e.URL == "" {
			return nil, errors.New("remote write: an endpoint needs its url")
		}
		e.Timeout = or(e.Timeout, DefaultTimeout)
		e.FlushInterval = or(e.FlushInterval, DefaultFlushInterval)
		e.MaxBackoff = or(e.MaxBackoff, DefaultMaxBackoff)
		if e.QueueSamples <= 0 {
			e.QueueSamples = DefaultQueueSamples
		}
		if e.BatchSamples <= 0 {
			e.BatchSamples = DefaultBatchSamples
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = e.TLS
		q := &queue{ep: e, m: m, log: log.With("remote_write", e.URL), wake: make(chan struct{}, 1),
			client: &http.Client{Transport: tr, Timeout: e.Timeout}}
		m.samples.WithLabelValues(e.URL, "sent")
		m.samples.WithLabelValues(e.URL, "dropped_queue_full")
		m.samples.WithLabelValues(e.URL, "dropped_rejected")
		f.queues = append(f.queues, q)
	}
	return f, nil
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Enabled reports whether any endpoint is configured.
func (f *Forwarder) Enabled() bool { return f != nil && len(f.queues) > 0 }

// Enqueue hands a stored push to every receiver's queue without waiting: the series are named and
// labelled as pushed, plus collector_id; timestamps default to collected_at as in the store.
func (f *Forwarder) Enqueue(collectorID string, req *api.PushRequest) {
	if !f.Enabled() || len(req.Metrics) == 0 {
		return
	}
	series := make([]prompb.TimeSeries, 0, len(req.Metrics))
	for _, s := range req.Metrics {
		ts := s.Timestamp
		if ts.IsZero() {
			ts = req.CollectedAt
		}
		labels := make([]prompb.Label, 0, len(s.Labels)+2)
		labels = append(labels, prompb.Label{Name: "__name__", Value: s.Name}, prompb.Label{Name: CollectorLabel, Value: collectorID})
		for k, v := range s.Labels {
			if k == CollectorLabel || k == "__name__" {
				continue // the collector's identity is the store's, not what it says of itself
			}
			labels = append(labels, prompb.Label{Name: k, Value: v})
		}
		slices.SortFunc(labels, func(a, b prompb.Label) int {
			switch {
			case a.Name < b.Name:
				return -1
			case a.Name > b.Name:
				return 1
			}
			return 0
		})
		series = append(series, prompb.TimeSeries{Labels: labels,
			Samples: []prompb.Sample{{Value: s.Value, Timestamp: ts.UnixMilli()}}})
	}
	for _, q := range f.queues {
		q.add(series)
	}
}

// Run sends until ctx ends, then tries once more to send what is queued (within a few seconds).
func (f *Forwarder) Run(ctx context.Context) {
	if !f.Enabled() {
		return
	}
	var wg sync.WaitGroup
	for _, q := range f.queues {
		wg.Go(func() { q.run(ctx) })
	}
	wg.Wait()
}

// queue is one receiver's bounded queue and its sender.
type queue struct {
	ep     Endpoint
	m      *metrics
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}

	mu      sync.Mutex
	pending []prompb.TimeSeries
}

func (q *queue) add(series []prompb.TimeSeries) {
	q.mu.Lock()
	room := q.ep.QueueSamples - len(q.pending)
	take := min(room, len(series))
	q.pending = append(q.pending, series[:take]...)
	n := len(q.pending)
	q.mu.Unlock()
	if dropped := len(series) - take; dropped > 0 {
		q.m.samples.WithLabelValues(q.ep.URL, "dropped_queue_full").Add(float64(dropped))
	}
	q.m.queued.WithLabelValues(q.ep.URL).Set(float64(n))
	if n >= q.ep.BatchSamples {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// next takes up to one batch off the queue.
func (q *queue) next() []prompb.TimeSeries {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), q.ep.BatchSamples)
	if n == 0 {
		return nil
	}
	batch := slices.Clone(q.pending[:n])
	q.pending = slices.Delete(q.pending, 0, n)
	q.m.queued.WithLabelValues(q.ep.URL).Set(float64(len(q.pending)))
	return batch
}

func (q *queue) run(ctx context.Context) {
	tick := time.NewTicker(q.ep.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			q.drain()
			return
		case <-tick.C:
		case <-q.wake:
		}
		for batch := q.next(); batch != nil; batch = q.next() {
			if !q.deliver(ctx, batch) {
				break // ctx ended mid-retry; the batch is counted as dropped
			}
		}
	}
}

// drain sends what is queued at shutdown, giving up after a few seconds.
func (q *queue) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for batch := q.next(); batch != nil; batch = q.next() {
		if !q.deliver(ctx, batch) {
			q.mu.Lock()
			left := len(q.pending)
			q.pending = nil
			q.mu.Unlock()
			q.m.samples.WithLabelValues(q.ep.URL, "dropped_queue_full").Add(float64(left))
			return
		}
	}
}

// deliver sends one batch, retrying network failures, 5xx and 429 with backoff until ctx ends;
// false when it ended first.
func (q *queue) deliver(ctx context.Context, batch []prompb.TimeSeries) bool {
	body, err := (&prompb.WriteRequest{Timeseries: batch}).Marshal()
	if err != nil {
		q.log.Error("encode remote-write batch", "err", err)
		q.m.samples.WithLabelValues(q.ep.URL, "dropped_rejected").Add(float64(len(batch)))
		return true
	}
	body = snappy.Encode(nil, body)
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: q.ep.MaxBackoff, Jitter: true}
	for attempt := 0; ; attempt++ {
		retry, delay, err := q.send(ctx, body)
		switch {
		case err == nil:
			q.m.samples.WithLabelValues(q.ep.URL, "sent").Add(float64(len(batch)))
			return true
		case !retry:
			q.log.Warn("remote-write receiver refused a batch; dropped", "samples", len(batch), "err", err)
			q.m.samples.WithLabelValues(q.ep.URL, "dropped_rejected").Add(float64(len(batch)))
			return true
		}
		if attempt == 0 {
			q.log.Warn("remote write failed; retrying", "err", err)
		}
		q.m.retries.WithLabelValues(q.ep.URL).Inc()
		if !wait.Sleep(ctx, max(delay, bo.Next())) {
			q.m.samples.WithLabelValues(q.ep.URL, "dropped_queue_full").Add(float64(len(batch)))
			return false
		}
	}
}

// send posts one encoded batch: retry says whether a failure may succeed later (network, 5xx,
// 429, whose Retry-After is delay).
func (q *queue) send(ctx context.Context, body []byte) (retry bool, delay time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.ep.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, err
	}
	for k, v := range q.ep.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "pganalytics-api")
	start := time.Now()
	res, err := q.client.Do(req)
	q.m.latency.WithLabelValues(q.ep.URL).Observe(time.Since(start).Seconds())
	if err != nil {
		return true, 0, err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode/100 == 2 {
		return false, 0, nil
	}
	err = fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(msg))
	if res.StatusCode == http.StatusTooManyRequests {
		if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil {
			delay = time.Duration(min(s, 300)) * time.Second
		}
		return true, delay, err
	}
	return res.StatusCode >= 500, 0, err
}
