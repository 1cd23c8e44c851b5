package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/store"
)

// maxIDBytes bounds path and query identifiers before they reach the store.
const maxIDBytes = 64

// query checks a request's query string: only the allowed parameters, each at most once.
func query(r *http.Request, allowed ...string) (url.Values, *httpError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeInvalidParameter, "malformed query string")
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return nil, newError(http.StatusBadRequest, codeInvalidParameter, "unknown query parameter %q", truncate(k, 40))
		}
		if len(vs) > 1 {
			return nil, newError(http.StatusBadRequest, codeInvalidParameter, "query parameter %q given more than once", k)
		}
		// What PostgreSQL text cannot hold is refused here, not by the database.
		if v := vs[0]; strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return nil, newError(http.StatusBadRequest, codeInvalidParameter, "query parameter %q must be valid UTF-8 without NUL", k)
		}
	}
	return q, nil
}

func queryTime(q url.Values, name string) (time.Time, *httpError) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, newError(http.StatusBadRequest, codeInvalidParameter, "%s: want an RFC 3339 time like 2026-02-27T15:00:00Z", name)
	}
	return t, nil
}

func queryInt(q url.Values, name string, lo, hi int64) (int64, *httpError) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, newError(http.StatusBadRequest, codeInvalidParameter, "%s: want a whole number in %d..%d", name, lo, hi)
	}
	return n, nil
}

// pathID returns a path parameter; an over-long one is answered 404 without asking the store.
func pathID(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := r.PathValue(name)
	if len(id) > maxIDBytes {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "not found"))
		return "", false
	}
	return id, true
}

// handleHealth is GET /api/v1/health: 200 healthy or degraded, 503 when the database is down.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := api.Health{
		Status:  "healthy",
		Uptime:  int64(time.Since(s.started) / time.Second),
		Version: s.version,
		Checks:  map[string]string{"database": "healthy", "cache": "healthy"},
	}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		s.dbError(ctx, "ping", err)
		h.Status, h.Checks["database"], status = "unhealthy", "unhealthy", http.StatusServiceUnavailable
	}
	// "cache" is the rate-limit bucket table: degraded while it is so full that buckets still in use
	// are being dropped.
	if s.limiter.Saturated(time.Now()) {
		h.Checks["cache"] = "degraded"
		if h.Status == "healthy" {
			h.Status = "degraded"
		}
	}
	// Alert delivery failing is degraded, not down: the API serves on, and the delivery retries.
	if s.notifier != nil {
		h.Checks["alertmanager"] = "healthy"
		if s.notifier.failing() {
			h.Checks["alertmanager"] = "degraded"
			if h.Status == "healthy" {
				h.Status = "degraded"
			}
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, h)
}

// readyCacheFor is how long a good store ping stands for readiness: well under any load
// balancer's probe interval times its fall count.
const readyCacheFor = 250 * time.Millisecond

// handleLive is GET /api/v1/health/live: the process serves. It checks nothing else, so an
// orchestrator does not restart a server for its database's outage.
func (s *Server) handleLive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.Probe{Status: "alive"})
}

// handleReady is GET /api/v1/health/ready: this server should get traffic. It fails while the
// server drains (SIGTERM) and while the store does not answer. Probes are not rate limited, so a
// good ping answers the probes of the next readyCacheFor without another round-trip.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusServiceUnavailable, api.Probe{Status: "draining", Reason: "the server is shutting down"})
		return
	}
	now := time.Now()
	if now.UnixNano() < s.readyUntil.Load() {
		writeJSON(w, http.StatusOK, api.Probe{Status: "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.dbError(ctx, "ping", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, api.Probe{Status: "unavailable", Reason: "the database does not answer"})
		return
	}
	s.readyUntil.Store(now.Add(readyCacheFor).UnixNano())
	writeJSON(w, http.StatusOK, api.Probe{Status: "ready"})
}

// handleQueryMetrics is GET /api/v1/metrics?collector_id=&name=&since=&until=&limit=.
func (s *Server) handleQueryMetrics(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "collector_id", "name", "since", "until", "limit", "step")
	if e != nil {
		writeErr(w, e)
		return
	}
	mq := store.MetricsQuery{CollectorID: q.Get("collector_id"), Name: q.Get("name")}
	switch q.Get("step") {
	case "":
	case "1m":
		mq.Step = time.Minute
	case "5m":
		mq.Step = 5 * time.Minute
	case "1h":
		mq.Step = time.Hour
	default:
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "step: want 1m, 5m or 1h (the rollups), or none for raw samples"))
		return
	}
	if mq.Name != "" && (len(mq.Name) > maxMetricNameBytes || !validMetricName(mq.Name)) {
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "name: want a metric name matching [a-zA-Z_:][a-zA-Z0-9_:]*"))
		return
	}
	if mq.Since, e = queryTime(q, "since"); e == nil {
		mq.Until, e = queryTime(q, "until")
	}
	if e == nil && !mq.Since.IsZero() && !mq.Until.IsZero() && mq.Until.Before(mq.Since) {
		e = newError(http.StatusBadRequest, codeInvalidParameter, "until is before since")
	}
	if e == nil {
		var limit int64
		limit, e = queryInt(q, "limit", 1, 10000)
		mq.Limit = int(limit)
	}
	if e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	if mq.CollectorID != "" {
		if len(mq.CollectorID) > maxIDBytes {
			writeErr(w, newError(http.StatusNotFound, codeNotFound, "collector not found"))
			return
		}
		if _, err := s.store.Collector(ctx, mq.CollectorID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				writeErr(w, newError(http.StatusNotFound, codeNotFound, "collector not found"))
				return
			}
			writeErr(w, s.storeFailure(ctx, "collector", err))
			return
		}
	}
	samples, err := s.store.QueryMetrics(ctx, mq)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "query_metrics", err))
		return
	}
	if samples == nil {
		samples = []api.MetricSample{}
	}
	writeJSON(w, http.StatusOK, api.MetricsResponse{Samples: samples})
}

// handleListCollectors is GET /api/v1/collectors.
func (s *Server) handleListCollectors(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	cs, err := s.store.ListCollectors(r.Context())
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "list_collectors", err))
		return
	}
	if cs == nil {
		cs = []api.Collector{}
	}
	writeJSON(w, http.StatusOK, api.CollectorsResponse{Collectors: cs})
}

// handleGetCollector is GET /api/v1/collectors/{id}.
func (s *Server) handleGetCollector(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	c, err := s.store.Collector(r.Context(), id)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "collector", err))
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// handleDeleteCollector is DELETE /api/v1/collectors/{id} (operator+): deregisters the collector
// and revokes its token.
func (s *Server) handleDeleteCollector(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	ctx := r.Context()
	if _, err := s.store.Collector(ctx, id); err != nil {
		writeErr(w, s.storeFailure(ctx, "collector", err))
		return
	}
	if !s.auditFirst(w, r, p.actor(), "collector_deleted", "collector:"+id, nil) {
		return
	}
	if err := s.store.DeleteCollector(ctx, id); err != nil {
		e := s.storeFailure(ctx, "delete_collector", err)
		s.auditFailed(r, p.actor(), "collector_deleted", "collector:"+id, e)
		writeErr(w, e)
		return
	}
	s.metrics.collectors.remove(id)
	w.WriteHeader(http.StatusNoContent)
}

// handleGetConfig is GET /api/v1/config/{collector_id}: admins read any configuration; a collector
// reads only its own, with its own token.
func (s *Server) handleGetConfig(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	id, ok := pathID(w, r, "collector_id")
	if !ok {
		return
	}
	switch {
	case p.kind == auth.KindCollector && p.id != id:
		s.deny(w, r, p, "the collector itself", "a collector may only read its own configuration")
		return
	case p.kind != auth.KindCollector && !atLeast(p.role, api.RoleAdmin):
		s.deny(w, r, p, api.RoleAdmin, "requires role admin")
		return
	}
	cfg, err := s.store.CollectorConfig(r.Context(), id)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "collector_config", err))
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

// handlePutConfig is PUT /api/v1/config/{collector_id} (admin).
func (s *Server) handlePutConfig(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := pathID(w, r, "collector_id")
	if !ok {
		return
	}
	var cfg api.CollectorConfig
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &cfg); e != nil {
		writeErr(w, e)
		return
	}
	switch {
	case cfg.CollectorID != "" && cfg.CollectorID != id:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "collector_id in the body does not match the path"))
		return
	case cfg.IntervalSeconds < 1 || cfg.IntervalSeconds > 3600:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "interval_seconds must be 1..3600"))
		return
	case cfg.QueryTimeoutSeconds < 1 || cfg.QueryTimeoutSeconds > 3600:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "query_timeout_seconds must be 1..3600"))
		return
	case cfg.QueryTimeoutSeconds > cfg.IntervalSeconds:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "query_timeout_seconds must not exceed interval_seconds"))
		return
	}
	ctx := r.Context()
	before, err := s.store.CollectorConfig(ctx, id)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "collector_config", err))
		return
	}
	cfg.CollectorID, cfg.UpdatedAt, cfg.UpdatedBy = id, nil, ""
	if !s.auditFirst(w, r, p.actor(), "config_changed", "collector:"+id, map[string]any{
		"before": configValues(before), "after": configValues(cfg),
	}) {
		return
	}
	after, err := s.store.PutCollectorConfig(ctx, cfg, p.actor())
	if err != nil {
		e := s.storeFailure(ctx, "put_collector_config", err)
		s.auditFailed(r, p.actor(), "config_changed", "collector:"+id, e)
		writeErr(w, e)
		return
	}
	writeJSON(w, http.StatusOK, after)
}

func configValues(c api.CollectorConfig) map[string]any {
	return map[string]any{
		"interval_seconds": c.IntervalSeconds, "pg_replication_enabled": c.PgReplicationEnabled,
		"query_timeout_seconds": c.QueryTimeoutSeconds,
	}
}

// handleAlerts is GET /api/v1/alerts: the alerts as the evaluating server last stored them
// (firing, pending, and resolved within the last alerting.ResolvedRetention), firing first.
func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	st, err := s.store.LoadAlerts(r.Context())
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "load_alerts", err))
		return
	}
	out := make([]api.Alert, 0, len(st.Alerts))
	for _, a := range st.Alerts {
		out = append(out, wireAlert(a))
	}
	rank := map[string]int{alerting.StateFiring: 0, alerting.StatePending: 1, alerting.StateResolved: 2}
	slices.SortStableFunc(out, func(a, b api.Alert) int { return rank[a.State] - rank[b.State] })
	writeJSON(w, http.StatusOK, api.AlertsResponse{EvaluatedAt: st.EvaluatedAt, Alerts: out})
}

func wireAlert(a alerting.Alert) api.Alert {
	w := api.Alert{
		Name: a.Rule, Severity: a.Severity, State: a.State, Firing: a.State == alerting.StateFiring,
		Value: a.Value, Threshold: a.Threshold, Summary: a.Summary, Description: a.Description,
		RunbookURL: a.RunbookURL, Labels: a.Labels, ActiveAt: a.ActiveAt,
	}
	if !a.FiredAt.IsZero() {
		w.FiredAt = &a.FiredAt
		if w.Firing {
			w.Since = &a.FiredAt
		}
	}
	if !a.ResolvedAt.IsZero() {
		w.ResolvedAt = &a.ResolvedAt
	}
	return w
}

var auditActionPattern = regexp.MustCompile(`^[a-z_]{1,64}$`)

// handleAudit is GET /api/v1/audit?limit=&before_id=&action= (admin).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "limit", "before_id", "action")
	if e != nil {
		writeErr(w, e)
		return
	}
	aq := store.AuditQuery{Action: q.Get("action")}
	if aq.Action != "" && !auditActionPattern.MatchString(aq.Action) {
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "action: want an action name like login_failed"))
		return
	}
	limit, e := queryInt(q, "limit", 1, store.MaxAuditLimit)
	if e == nil {
		aq.BeforeID, e = queryInt(q, "before_id", 1, 1<<62)
	}
	if e != nil {
		writeErr(w, e)
		return
	}
	aq.Limit = int(limit)
	entries, err := s.store.ListAudit(r.Context(), aq)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "list_audit", err))
		return
	}
	if entries == nil {
		entries = []api.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, api.AuditResponse{Entries: entries})
}
