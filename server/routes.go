package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/pganalytics/pganalytics/internal/api"
)

// The probe paths, which the rate limiter lets through.
const (
	pathLive  = "/api/v1/health/live"
	pathReady = "/api/v1/health/ready"
)

// Route patterns that the access log treats specially.
const (
	routeHealth     = "GET /api/v1/health"
	routeLive       = "GET " + pathLive
	routeReady      = "GET " + pathReady
	routePrometheus = "GET /metrics"
	routeStream     = "GET /api/v1/replication/stream"
)

// routes registers every endpoint (docs/api.md, endpoints) with its role rule.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		s.patterns = append(s.patterns, pattern)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			infoOf(r).route = pattern
			h(w, r)
		})
	}
	viewer := func(h principalHandler) http.HandlerFunc { return s.userOnly(api.RoleViewer, h) }
	operator := func(h principalHandler) http.HandlerFunc { return s.userOnly(api.RoleOperator, h) }
	admin := func(h principalHandler) http.HandlerFunc { return s.userOnly(api.RoleAdmin, h) }

	handle(routeHealth, s.handleHealth)
	handle(routeLive, s.handleLive)
	handle(routeReady, s.handleReady)
	handle(routeOpenAPI, s.handleOpenAPI)
	handle("POST /api/v1/auth/login", s.handleLogin)
	handle("POST /api/v1/auth/refresh", s.handleRefresh)
	handle("POST /api/v1/auth/logout", viewer(s.handleLogout))
	handle("POST /api/v1/collectors/register", s.handleRegister)
	handle("POST /api/v1/metrics/push", s.collectorPush(s.handlePush))
	handle("GET /api/v1/metrics", viewer(s.handleQueryMetrics))
	handle("GET /api/v1/collectors", viewer(s.handleListCollectors))
	handle("GET /api/v1/collectors/{id}", viewer(s.handleGetCollector))
	handle("DELETE /api/v1/collectors/{id}", operator(s.handleDeleteCollector))
	handle("GET /api/v1/config/{collector_id}", s.handleGetConfig)
	handle("PUT /api/v1/config/{collector_id}", admin(s.handlePutConfig))
	handle("GET /api/v1/replication", viewer(s.handleReplication))
	handle(routeStream, viewer(s.handleReplicationStream))
	handle("GET /api/v1/clusters", viewer(s.handleClusters))
	handle("GET /api/v1/clusters/{name}/history", viewer(s.handleClusterHistory))
	handle("GET /api/v1/events", viewer(s.handleEvents))
	handle("GET /api/v1/users", admin(s.handleListUsers))
	handle("POST /api/v1/users", admin(s.handleCreateUser))
	handle("DELETE /api/v1/users/{id}", admin(s.handleDeleteUser))
	handle("PUT /api/v1/users/{id}/team-roles", admin(s.handleSetTeamRoles))
	handle("GET /api/v1/runbook/runs", viewer(s.handleRunbookRuns))
	handle("POST /api/v1/runbook/runs", operator(s.handleCreateRunbookRun))
	handle("GET /api/v1/runbook/runs/{id}", viewer(s.handleRunbookRun))
	handle("PUT /api/v1/runbook/runs/{id}", operator(s.handleSaveRunbookRun))
	handle("GET /api/v1/runbook/runs/{id}/stream", viewer(s.handleRunbookStream))
	handle("POST /api/v1/runbook/runs/{id}/lease", operator(s.handleRunbookLease))
	handle("DELETE /api/v1/runbook/runs/{id}/lease", operator(s.handleReleaseRunbookLease))
	handle("GET /api/v1/runbook/runs/{id}/records", viewer(s.handleRunbookRecords))
	handle("POST /api/v1/runbook/runs/{id}/records", operator(s.handleAppendRunbookRecord))
	handle("POST /api/v1/runbook/runs/{id}/approvals", operator(s.handleRunbookApproval))
	handle("GET /api/v1/runbook/approvals", viewer(s.handlePendingApprovals))
	handle("GET /api/v1/audit", admin(s.handleAudit))
	handle("GET /api/v1/alerts", viewer(s.handleAlerts))
	handle("POST /api/v1/alerts/test", operator(s.handleAlertTest))
	handle("GET /api/v1/alerts/test/{id}", operator(s.handleAlertTestStatus))
	handle("DELETE /api/v1/alerts/test/{id}", operator(s.handleAlertTestResolve))
	handle("POST /api/v1/alerts/silences", operator(s.handleCreateSilence))
	if s.cfg.Metrics.ListenAddr == "" {
		handle(routePrometheus, s.handlePrometheus)
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(&jsonUnmatched{ResponseWriter: w, info: infoOf(r)}, r)
	})
}

// handlePrometheus is GET /metrics: the exposition, behind metrics.bearer_token when one is set
// (compared in constant time, as SHA-256 digests).
func (s *Server) handlePrometheus(w http.ResponseWriter, r *http.Request) {
	if s.metricsToken != nil {
		tok, _ := bearerToken(r)
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], s.metricsToken) != 1 {
			s.authFailure("invalid_metrics_token")
			writeErr(w, newError(http.StatusUnauthorized, codeUnauthorized, "/metrics needs the scrape bearer token (metrics.bearer_token)"))
			return
		}
	}
	s.prometheus.ServeHTTP(w, r)
}

// metricsRoutes is what the separate metrics listener (metrics.listen_addr) serves: /metrics only.
func (s *Server) metricsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(routePrometheus, func(w http.ResponseWriter, r *http.Request) {
		infoOf(r).route = routePrometheus
		s.handlePrometheus(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(&jsonUnmatched{ResponseWriter: w, info: infoOf(r)}, r)
	})
}

// promErrorLog adapts the logger to promhttp's error log.
type promErrorLog struct{ log *slog.Logger }

func (l promErrorLog) Println(v ...any) { l.log.Error("metrics exposition", "err", fmt.Sprint(v...)) }
