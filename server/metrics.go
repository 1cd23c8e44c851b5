package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// metrics is the server's own Prometheus registry (no global state): what the seed's alert rules
// need, plus the Go runtime and process collectors.
type metrics struct {
	reg           *prometheus.Registry
	duration      *prometheus.HistogramVec
	inFlight      prometheus.Gauge
	authFailures  *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	ingestSamples prometheus.Counter
	ingestByID    prometheus.Counter
	ingestErrors  *prometheus.CounterVec
	dbErrors      *prometheus.CounterVec
	sseClients    prometheus.Gauge
	sseDropped    prometheus.Counter
	sseRefused    *prometheus.CounterVec
	auditFailures *prometheus.CounterVec
	clientErrors  *prometheus.CounterVec
	pushBusy      *prometheus.CounterVec
	pushMemory    prometheus.Gauge

	evaluationSeconds  prometheus.Histogram
	evaluationFailures prometheus.Counter
	notifications      *prometheus.CounterVec
	events             *prometheus.CounterVec
	collectors         *collectorStatus
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pganalytics_api_request_duration_seconds",
			Help:    "HTTP request duration by route pattern and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pganalytics_api_requests_in_flight",
			Help: "Requests being served.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_auth_failures_total",
			Help: "Failed authentications by reason (bad login, invalid, expired, revoked or reused token, bad registration secret).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_rate_limited_total",
			Help: "Requests refused with 429, by bucket scope (ip, access, collector).",
		}, []string{"scope"}),
		ingestSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pganalytics_api_ingest_samples_total",
			Help: "Metric samples accepted and stored.",
		}),
		ingestByID: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pganalytics_api_ingest_samples_by_id_total",
			Help: "Metric samples pushed by series id (the collectors' steady state), of those in pganalytics_api_ingest_samples_total.",
		}),
		ingestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_ingest_errors_total",
			Help: "Pushes rejected, by reason (invalid, too_large, unsupported_encoding, store).",
		}, []string{"reason"}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_db_errors_total",
			Help: "Database operations that failed, by operation (absent until the first failure).",
		}, []string{"op"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pganalytics_api_sse_subscribers",
			Help: "Clients following the replication event stream.",
		}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pganalytics_api_sse_dropped_subscribers_total",
			Help: "Event-stream subscribers disconnected because they did not keep up.",
		}),
		sseRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_sse_refused_total",
			Help: "Event streams refused with 429, by cap (principal, server).",
		}, []string{"cap"}),
		auditFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_audit_failures_total",
			Help: "Audit entries that could not be written, by action; a security-relevant request whose entry fails is refused.",
		}, []string{"action"}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_db_client_errors_total",
			Help: "Database operations refused because of the client's input (counted apart from pganalytics_api_db_errors_total), by operation.",
		}, []string{"op"}),
		pushBusy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_push_busy_total",
			Help: "Pushes refused before decoding because of the push limits, by limit (collector: 429, memory: 503).",
		}, []string{"limit"}),
		pushMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pganalytics_api_push_memory_bytes",
			Help: "Decompressed push bytes being decoded now, against limits.push_memory_bytes.",
		}),
		evaluationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pganalytics_api_alert_evaluation_seconds",
			Help:    "Time one evaluation of the alert rules took (on the server holding the alerting lock).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		evaluationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pganalytics_api_alert_evaluation_failures_total",
			Help: "Evaluations of the alert rules that failed.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_alert_notifications_total",
			Help: "Alerts posted to Alertmanager by this server, by Alertmanager URL and result (sent, failed: retried).",
		}, []string{"alertmanager", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pganalytics_api_replication_events_total",
			Help: "Replication events this server detected (while it held the topology lock), by kind.",
		}, []string{"kind"}),
		collectors: newCollectorStatus(10 * time.Minute),
	}
	// Known label values start at zero so that rate() and alert rules see the series from the start.
	for _, r := range []string{"invalid_credentials", "locked", "invalid_token", "expired_token", "revoked_token", "reused_token", "invalid_registration_secret", "invalid_metrics_token", "throttled"} {
		m.authFailures.WithLabelValues(r)
	}
	for _, s := range []string{"ip", "access", "collector"} {
		m.rateLimited.WithLabelValues(s)
	}
	for _, r := range []string{"invalid", "too_large", "unsupported_encoding", "store", "busy", "timeout"} {
		m.ingestErrors.WithLabelValues(r)
	}
	for _, c := range []string{"principal", "server"} {
		m.sseRefused.WithLabelValues(c)
	}
	for _, l := range []string{"collector", "memory"} {
		m.pushBusy.WithLabelValues(l)
	}
	m.reg.MustRegister(m.duration, m.inFlight, m.authFailures, m.rateLimited, m.ingestSamples, m.ingestByID,
		m.ingestErrors, m.dbErrors, m.sseClients, m.sseDropped, m.sseRefused, m.auditFailures, m.clientErrors,
		m.pushBusy, m.pushMemory, m.evaluationSeconds, m.evaluationFailures, m.notifications, m.events, m.collectors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// collectorStatus exposes what each collector last reported about itself in a push. The counters
// are the collector's own cumulative totals, so they are exported as counters (a collector restart is
// a counter reset, which rate() handles). Entries not refreshed within ttl disappear, so a collector
// that moved to another server behind the load balancer does not leave a frozen series here.
type collectorStatus struct {
	ttl         time.Duration
	utilization *prometheus.Desc
	failures    *prometheus.Desc
	collections *prometheus.Desc
	dropped     *prometheus.Desc

	mu     sync.Mutex
	latest map[string]reported
}

type reported struct {
	at     time.Time
	status api.CollectorStatus
}

func newCollectorStatus(ttl time.Duration) *collectorStatus {
	l := []string{"collector_id"}
	return &collectorStatus{
		ttl: ttl,
		utilization: prometheus.NewDesc("pganalytics_collector_buffer_utilization_ratio",
			"Collector spool utilization (0..1) as reported in its last push.", l, nil),
		failures: prometheus.NewDesc("pganalytics_collector_collection_failures_total",
			"Collection cycles that failed, as reported by the collector.", l, nil),
		collections: prometheus.NewDesc("pganalytics_collector_collections_total",
			"Collection cycles run, as reported by the collector.", l, nil),
		dropped: prometheus.NewDesc("pganalytics_collector_buffer_dropped_total",
			"Batches the collector dropped because its spool was full, as reported by the collector.", l, nil),
		latest: make(map[string]reported),
	}
}

func (c *collectorStatus) set(collectorID string, st api.CollectorStatus, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latest[collectorID] = reported{at: now, status: st}
}

func (c *collectorStatus) remove(collectorID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.latest, collectorID)
}

func (c *collectorStatus) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.utilization
	ch <- c.failures
	ch <- c.collections
	ch <- c.dropped
}

func (c *collectorStatus) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for id, r := range c.latest {
		if now.Sub(r.at) > c.ttl {
			delete(c.latest, id)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.utilization, prometheus.GaugeValue, r.status.BufferUtilization, id)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(r.status.CollectionFailuresTotal), id)
		ch <- prometheus.MustNewConstMetric(c.collections, prometheus.CounterValue, float64(r.status.CollectionsTotal), id)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(r.status.BufferDroppedTotal), id)
	}
}

// dbError counts and logs a failed database operation (its text stays in the log).
func (s *Server) dbError(ctx context.Context, op string, err error) {
	if store.IsClientError(err) {
		// The client's data, not the database: kept out of the database-errors alert.
		s.metrics.clientErrors.WithLabelValues(op).Inc()
		s.log.WarnContext(ctx, "database refused a value", "op", op, "err", err)
		return
	}
	s.metrics.dbErrors.WithLabelValues(op).Inc()
	s.stats.dbError(time.Now())
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		s.log.ErrorContext(ctx, "database error", "op", op, "err", err, "request_id", info.id)
		return
	}
	s.log.ErrorContext(ctx, "database error", "op", op, "err", err)
}
