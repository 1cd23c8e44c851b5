package runbook

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pganalytics/pganalytics/client"
)

// The plan's performance targets (Step 8, Phase 2 and 3).
const (
	maxP95         = 500 * time.Millisecond
	maxCPUFraction = 0.10
	maxRSSBytes    = 200 << 20
	maxQueryTime   = time.Second
	// DefaultPerfWindow is how long the performance check watches when the step sets no window.
	DefaultPerfWindow = 30 * time.Second
	// maxMetricsBytes bounds one /metrics answer read by the check.
	maxMetricsBytes = 8 << 20
)

// ValidationSQL is the plan's "Check database query performance" query (Phase 3 Step 8); the load
// test times it too, for the baseline the Phase 4 watch compares with.
const ValidationSQL = `SELECT DISTINCT collector_id, COUNT(*) as metrics FROM metrics ` +
	`WHERE timestamp > now() - interval '10 minutes' GROUP BY collector_id`

// scrape is one read of an API server's /metrics.
type scrape struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

// checkPerformance is the plan's Step 8 measured over window: the API's p95 from its request
// histogram (every route but the long-lived stream), each API server's CPU and resident memory
// from its process metrics, every collector's CPU, memory and success (no failed collection or
// push) from what it pushed to the store, and the time of the plan's validation SQL.
func (e *Engine) checkPerformance(ctx context.Context, s *Step, out *lineWriter) error {
	window := DefaultPerfWindow
	if s.Window.D() != 0 {
		window = s.Window.D()
	}
	targets, err := e.perfTargets(s)
	if err != nil {
		return err
	}
	token := ""
	if s.Token != "" {
		if token, err = e.env.expandStep(s.Token); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	first := make([]scrape, len(targets))
	for i, t := range targets {
		if first[i], err = scrapeMetrics(ctx, t, token); err != nil {
			return err
		}
	}
	out.println(fmt.Sprintf("watching %d API server(s) for %s", len(targets), window))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	var problems []string
	var bucketsBefore, bucketsAfter []map[float64]float64
	for i, t := range targets {
		second, err := scrapeMetrics(ctx, t, token)
		if err != nil {
			return err
		}
		elapsed := second.at.Sub(first[i].at).Seconds()
		cpu := (gauge(second, "process_cpu_seconds_total") - gauge(first[i], "process_cpu_seconds_total")) / elapsed
		rss := gauge(second, "process_resident_memory_bytes")
		out.println(fmt.Sprintf("API %s: CPU %.1f %%, RSS %.0f MiB", t.BaseURL(), 100*cpu, rss/(1<<20)))
		if cpu >= maxCPUFraction {
			problems = append(problems, fmt.Sprintf("API %s CPU %.1f %% ≥ %.0f %%", t.BaseURL(), 100*cpu, 100*maxCPUFraction))
		}
		if rss >= maxRSSBytes {
			problems = append(problems, fmt.Sprintf("API %s RSS %.0f MiB ≥ %d MiB", t.BaseURL(), rss/(1<<20), maxRSSBytes>>20))
		}
		bucketsBefore = append(bucketsBefore, requestBuckets(first[i]))
		bucketsAfter = append(bucketsAfter, requestBuckets(second))
	}
	p95, n := quantileOfDelta(0.95, bucketsBefore, bucketsAfter)
	switch {
	case n == 0:
		out.println("API p95: no request in the window")
	case p95 >= maxP95.Seconds():
		problems = append(problems, fmt.Sprintf("API p95 %s over %d requests ≥ %s", secs(p95), int(n), maxP95))
	}
	if n > 0 {
		out.println(fmt.Sprintf("API p95 %s over %d requests (target < %s)", secs(p95), int(n), maxP95))
	}
	if s.Database != "" {
		problems = append(problems, e.perfStore(ctx, s, window, out)...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("performance: %s", strings.Join(problems, "; "))
	}
	return nil
}

// perfTargets are the API servers to scrape: each of servers, else url.
func (e *Engine) perfTargets(s *Step) ([]*client.Client, error) {
	if s.Servers == "" {
		c, err := e.apiClient(s)
		if err != nil {
			return nil, err
		}
		return []*client.Client{c}, nil
	}
	servers, err := e.servers(s)
	if err != nil {
		return nil, err
	}
	var out []*client.Client
	for _, srv := range servers {
		c, err := e.serverClient(srv)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func scrapeMetrics(ctx context.Context, c *client.Client, token string) (scrape, error) {
	req := client.RawRequest{Path: "/metrics", Header: http.Header{"Accept": {"text/plain"}}}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.WithToken("").Do(ctx, req)
	if err != nil {
		return scrape{}, classifyHTTP(fmt.Errorf("scrape %s/metrics: %w", c.BaseURL(), err))
	}
	if resp.Status != http.StatusOK {
		return scrape{}, fmt.Errorf("scrape %s/metrics: HTTP %d (a bearer token needed? set the step's token)", c.BaseURL(), resp.Status)
	}
	if len(resp.Body) > maxMetricsBytes {
		return scrape{}, fmt.Errorf("scrape %s/metrics: %d bytes, more than %d", c.BaseURL(), len(resp.Body), maxMetricsBytes)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(resp.Body))
	if err != nil {
		return scrape{}, fmt.Errorf("scrape %s/metrics: %w", c.BaseURL(), err)
	}
	return scrape{at: time.Now(), families: fams}, nil
}

// gauge is the value of an unlabelled gauge or counter, 0 when absent.
func gauge(s scrape, name string) float64 {
	f := s.families[name]
	if f == nil || len(f.Metric) == 0 {
		return 0
	}
	m := f.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// requestBuckets sums the request histogram's cumulative buckets over every route but the stream.
func requestBuckets(s scrape) map[float64]float64 {
	out := map[float64]float64{}
	f := s.families["pganalytics_api_request_duration_seconds"]
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		if isStreamRoute(m) || m.Histogram == nil {
			continue
		}
		for _, b := range m.Histogram.Bucket {
			if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf too: it is the count
				out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		out[math.Inf(1)] += float64(m.Histogram.GetSampleCount())
	}
	return out
}

func isStreamRoute(m *dto.Metric) bool {
	for _, l := range m.Label {
		if l.GetName() == "route" && strings.Contains(l.GetValue(), "/stream") {
			return true
		}
	}
	return false
}

// quantileOfDelta is histogram_quantile(q) over the increase of the summed buckets between the two
// scrapes of every server (linear within a bucket, as Prometheus does); n is the requests counted.
func quantileOfDelta(q float64, before, after []map[float64]float64) (value, n float64) {
	delta := map[float64]float64{}
	for i := range after {
		for le, c := range after[i] {
			delta[le] += c - before[i][le]
		}
	}
	bounds := make([]float64, 0, len(delta))
	for le := range delta {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0, 0
	}
	n = delta[math.Inf(1)]
	if n <= 0 {
		return 0, 0
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		c := delta[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return lower, n // beyond the last finite bucket: its bound is what is known
			}
			if c == below {
				return le, n
			}
			return lower + (le-lower)*(rank-below)/(c-below), n
		}
		lower, below = le, c
	}
	return lower, n
}

// perfStore checks every collector that pushed in the window, from its own samples, and times the
// plan's validation SQL.
func (e *Engine) perfStore(ctx context.Context, s *Step, window time.Duration, out *lineWriter) []string {
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return []string{err.Error()}
	}
	defer closeConn(conn)
	var problems []string
	rows, err := conn.Query(ctx, `
		WITH w AS (
			SELECT c.name AS collector, m.name, m.timestamp, m.value
			FROM metrics m JOIN collectors c ON c.id::text = m.collector_id::text
			WHERE m.timestamp > now() - $1::interval
			  AND m.name IN ('pganalytics_collector_process_cpu_seconds_total', 'pganalytics_collector_process_resident_memory_bytes',
			                 'pganalytics_collector_collection_failures_total', 'pganalytics_collector_push_failures_total')
		)
		SELECT collector,
		       coalesce((max(value) FILTER (WHERE name = 'pganalytics_collector_process_cpu_seconds_total')
		               - min(value) FILTER (WHERE name = 'pganalytics_collector_process_cpu_seconds_total'))
		              / nullif(extract(epoch FROM max(timestamp) FILTER (WHERE name = 'pganalytics_collector_process_cpu_seconds_total')
		                                    - min(timestamp) FILTER (WHERE name = 'pganalytics_collector_process_cpu_seconds_total')), 0), 0),
		       coalesce(max(value) FILTER (WHERE name = 'pganalytics_collector_process_resident_memory_bytes'), 0),
		       coalesce(max(value) FILTER (WHERE name = 'pganalytics_collector_collection_failures_total')
		              - min(value) FILTER (WHERE name = 'pganalytics_collector_collection_failures_total'), 0),
		       coalesce(max(value) FILTER (WHERE name = 'pganalytics_collector_push_failures_total')
		              - min(value) FILTER (WHERE name = 'pganalytics_collector_push_failures_total'), 0)
		FROM w GROUP BY collector ORDER BY collector`, fmt.Sprintf("%d seconds", int(window.Seconds())+1))
	if err != nil {
		return []string{fmt.Sprintf("collectors on %s: %v", label, err)}
	}
	var collectors int
	for rows.Next() {
		var name string
		var cpu, rss, failed, pushFailed float64
		if err := rows.Scan(&name, &cpu, &rss, &failed, &pushFailed); err != nil {
			rows.Close()
			return append(problems, fmt.Sprintf("collectors on %s: %v", label, err))
		}
		collectors++
		out.println(fmt.Sprintf("collector %s: CPU %.1f %%, RSS %.0f MiB, %.0f failed collections, %.0f failed pushes", name, 100*cpu, rss/(1<<20), failed, pushFailed))
		if cpu >= maxCPUFraction {
			problems = append(problems, fmt.Sprintf("collector %s CPU %.1f %% ≥ %.0f %%", name, 100*cpu, 100*maxCPUFraction))
		}
		if rss >= maxRSSBytes {
			problems = append(problems, fmt.Sprintf("collector %s RSS %.0f MiB ≥ %d MiB", name, rss/(1<<20), maxRSSBytes>>20))
		}
		if failed > 0 || pushFailed > 0 {
			problems = append(problems, fmt.Sprintf("collector %s success below 100 %% (%.0f failed collections, %.0f failed pushes)", name, failed, pushFailed))
		}
	}
	if err := rows.Err(); err != nil {
		return append(problems, fmt.Sprintf("collectors on %s: %v", label, err))
	}
	if collectors == 0 {
		problems = append(problems, fmt.Sprintf("no collector pushed to %s within the window", label))
	}
	began := time.Now()
	vrows, err := conn.Query(ctx, ValidationSQL)
	if err == nil {
		for vrows.Next() {
		}
		vrows.Close()
		err = vrows.Err()
	}
	took := time.Since(began)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("validation SQL on %s: %v", label, err))
	case took >= maxQueryTime:
		problems = append(problems, fmt.Sprintf("validation SQL took %s ≥ %s", took.Round(time.Millisecond), maxQueryTime))
	default:
		out.println(fmt.Sprintf("the plan's validation SQL on %s: %s", label, took.Round(time.Microsecond)))
	}
	return problems
}

func secs(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(100 * time.Microsecond).String()
}
