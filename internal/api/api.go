// Package api holds the JSON wire types of the pgAnalytics HTTP API (/api/v1), shared by the server,
// the typed client, the collector and the console so that one definition is the contract.
package api

import (
	"encoding/json"
	"time"
)

// Roles, highest first. A role grants everything the roles below it grant.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// Error is the body of every non-2xx response: {"error":{"code":"…","message":"…"}}.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine-readable code plus a human message; never a stack trace, SQL or secret.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Health is GET /api/v1/health.
type Health struct {
	Status  string            `json:"status"` // healthy | degraded | unhealthy
	Uptime  int64             `json:"uptime"` // seconds
	Version string            `json:"version"`
	Checks  map[string]string `json:"checks"`
}

// Probe is GET /api/v1/health/live and /api/v1/health/ready: what a load balancer or an
// orchestrator needs, nothing more.
type Probe struct {
	Status string `json:"status"`           // alive | ready | draining | unavailable
	Reason string `json:"reason,omitempty"` // why not ready
}

// LoginRequest is POST /api/v1/auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TokenPair answers login and refresh.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	ExpiresIn    int64  `json:"expires_in"` // seconds until the access token expires
	Role         string `json:"role"`
}

// RefreshRequest is POST /api/v1/auth/refresh and POST /api/v1/auth/logout.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// RegisterRequest is POST /api/v1/collectors/register (header X-Registration-Secret).
type RegisterRequest struct {
	Name     string `json:"name"`
	Hostname string `json:"hostname"`
}

// RegisterResponse is the 201 answer to a registration. Token is shown once.
type RegisterResponse struct {
	CollectorID string    `json:"collector_id"`
	Token       string    `json:"token"`
	TokenType   string    `json:"token_type"`
	Name        string    `json:"name"`
	Hostname    string    `json:"hostname"`
	CreatedAt   time.Time `json:"created_at"`
}

// Sample is one metric value. Timestamp defaults to PushRequest.CollectedAt when zero.
type Sample struct {
	Name      string            `json:"name"`
	Value     float64           `json:"value"`
	Labels    map[string]string `json:"labels,omitempty"`
	Timestamp time.Time         `json:"timestamp,omitempty"`
}

// CollectorStatus is the collector's report on itself, sent with every push.
type CollectorStatus struct {
	Version                 string  `json:"version"`
	Hostname                string  `json:"hostname,omitempty"`
	Instances               int     `json:"instances"`
	IntervalSeconds         float64 `json:"interval_seconds"`
	CycleSeconds            float64 `json:"cycle_seconds"`
	BufferUtilization       float64 `json:"buffer_utilization"` // 0..1 of the spool's capacity
	BufferDroppedTotal      int64   `json:"buffer_dropped_total"`
	CollectionFailuresTotal int64   `json:"collection_failures_total"`
	CollectionsTotal        int64   `json:"collections_total"`
}

// PushRequest is POST /api/v1/metrics/push (collector token; Content-Encoding: gzip optional).
// Samples of series the collector has not been given an id for yet go in Metrics, by name and
// labels; the others in ByID, by the ids earlier answers handed back (PushResponse.SeriesIDs).
type PushRequest struct {
	CollectedAt time.Time        `json:"collected_at"`
	Metrics     []Sample         `json:"metrics,omitempty"`
	ByID        *SeriesSamples   `json:"by_id,omitempty"`
	Snapshot    *Snapshot        `json:"snapshot,omitempty"`
	Status      *CollectorStatus `json:"status,omitempty"`
}

// SeriesSamples are samples of series known by id, as columns: Values[i] (at TimestampsMS[i],
// Unix milliseconds, or the push's collected_at when TimestampsMS is empty) of series
// SeriesIDs[i]. The steady state of a collector: no names or labels to send, decode or look up.
type SeriesSamples struct {
	SeriesIDs    []int64   `json:"series_ids"`
	Values       []float64 `json:"values"`
	TimestampsMS []int64   `json:"timestamps_ms,omitempty"`
}

// Len is the number of samples.
func (s *SeriesSamples) Len() int {
	if s == nil {
		return 0
	}
	return len(s.SeriesIDs)
}

// Samples is the number of samples of the push, by name and by id.
func (p *PushRequest) Samples() int { return len(p.Metrics) + p.ByID.Len() }

// PushResponse is the 202 answer to a push. SeriesIDs holds the id of the series of each sample
// of the request's Metrics, in order (0 for a sample that was not stored), for the collector to
// send those series by id from then on.
type PushResponse struct {
	Accepted  int     `json:"accepted"`
	SeriesIDs []int64 `json:"series_ids,omitempty"`
}

// MetricSample is one row of GET /api/v1/metrics.
type MetricSample struct {
	Timestamp   time.Time         `json:"timestamp"`
	CollectorID string            `json:"collector_id"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Value       float64           `json:"value"` // with step: the bucket's average

	// With step (1m, 1h): the bucket's rollup; Timestamp is the bucket's start.
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Last  *float64 `json:"last,omitempty"`
	Count int      `json:"count,omitempty"`
}

// MetricsResponse is GET /api/v1/metrics.
type MetricsResponse struct {
	Samples []MetricSample `json:"samples"`
}

// Collector is one registered collector as GET /api/v1/collectors shows it.
type Collector struct {
	ID                      string     `json:"id"`
	Name                    string     `json:"name"`
	Hostname                string     `json:"hostname"`
	Status                  string     `json:"status"` // active | stale | never_pushed
	Version                 string     `json:"version,omitempty"`
	RegisteredAt            time.Time  `json:"registered_at"`
	LastPushAt              *time.Time `json:"last_push_at,omitempty"`
	IntervalSeconds         float64    `json:"interval_seconds,omitempty"`
	Instances               int        `json:"instances"`
	BufferUtilization       float64    `json:"buffer_utilization"`
	BufferDroppedTotal      int64      `json:"buffer_dropped_total"`
	CollectionFailuresTotal int64      `json:"collection_failures_total"`
	CollectionsTotal        int64      `json:"collections_total"`
}

// CollectorsResponse is GET /api/v1/collectors.
type CollectorsResponse struct {
	Collectors []Collector `json:"collectors"`
}

// CollectorConfig is GET/PUT /api/v1/config/{collector_id}: what the server tells a collector to do.
type CollectorConfig struct {
	CollectorID          string     `json:"collector_id"`
	IntervalSeconds      int        `json:"interval_seconds"`
	PgReplicationEnabled bool       `json:"pg_replication_enabled"`
	QueryTimeoutSeconds  int        `json:"query_timeout_seconds"`
	UpdatedAt            *time.Time `json:"updated_at,omitempty"`
	UpdatedBy            string     `json:"updated_by,omitempty"`
}

// User is one console/API user.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	TeamRoles []string  `json:"team_roles,omitempty"` // deployment-lead, database-lead, … (TeamRoles)
	CreatedAt time.Time `json:"created_at"`
}

// CreateUserRequest is POST /api/v1/users.
type CreateUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// UsersResponse is GET /api/v1/users.
type UsersResponse struct {
	Users []User `json:"users"`
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`  // "user:alice", "collector:<id>", "anonymous"
	Action  string          `json:"action"` // login, login_failed, register, register_failed, role_denied, config_changed, …
	Target  string          `json:"target,omitempty"`
	IP      string          `json:"ip,omitempty"`
	Success bool            `json:"success"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// AuditResponse is GET /api/v1/audit.
type AuditResponse struct {
	Entries []AuditEntry `json:"entries"`
}

// Alert is one alert of GET /api/v1/alerts: a rule at one severity for one object (its labels).
type Alert struct {
	Name        string            `json:"name"`     // the rule
	Severity    string            `json:"severity"` // warning | critical
	State       string            `json:"state"`    // pending | firing | resolved
	Firing      bool              `json:"firing"`
	Since       *time.Time        `json:"since,omitempty"` // when it started firing, while it fires
	ActiveAt    time.Time         `json:"active_at"`       // when its condition started holding
	FiredAt     *time.Time        `json:"fired_at,omitempty"`
	ResolvedAt  *time.Time        `json:"resolved_at,omitempty"`
	Value       float64           `json:"value"`
	Threshold   float64           `json:"threshold"`
	Summary     string            `json:"summary"`
	Description string            `json:"description,omitempty"`
	RunbookURL  string            `json:"runbook_url,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// AlertTest answers the delivery self-test: POST /api/v1/alerts/test (sent), GET
// /api/v1/alerts/test/{id} (held by each Alertmanager), DELETE /api/v1/alerts/test/{id} (resolved).
type AlertTest struct {
	ID            string               `json:"id"`
	Alertmanagers []AlertmanagerResult `json:"alertmanagers"`
}

// AlertmanagerResult is one Alertmanager's answer.
type AlertmanagerResult struct {
	URL   string `json:"url"`
	OK    bool   `json:"ok"`
	ID    string `json:"id,omitempty"` // a created silence's id
	Error string `json:"error,omitempty"`
}

// SilenceRequest is POST /api/v1/alerts/silences: silence the alerts whose labels equal every
// matcher, for Duration (a Go duration, 1m..168h), saying why.
type SilenceRequest struct {
	Matchers map[string]string `json:"matchers"`
	Duration string            `json:"duration"`
	Comment  string            `json:"comment"`
}

// SilenceResponse answers a silence: when it holds, and each Alertmanager's silence id.
type SilenceResponse struct {
	StartsAt      time.Time            `json:"starts_at"`
	EndsAt        time.Time            `json:"ends_at"`
	Alertmanagers []AlertmanagerResult `json:"alertmanagers"`
}

// AlertsResponse is GET /api/v1/alerts.
type AlertsResponse struct {
	EvaluatedAt time.Time `json:"evaluated_at"`
	Alerts      []Alert   `json:"alerts"`
}
