package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
	"github.com/pganalytics/pganalytics/server/store"
)

// Store is what the HTTP layer needs from the metrics store (*store.Store implements it).
type Store interface {
	Ping(ctx context.Context) error
	DeleteExpiredRateLimits(ctx context.Context) (int64, error)

	CreateUser(ctx context.Context, username, passwordHash, role string) (api.User, error)
	UserByUsername(ctx context.Context, username string) (store.UserRecord, error)
	UserByID(ctx context.Context, id string) (api.User, error)
	ListUsers(ctx context.Context) ([]api.User, error)
	DeleteUser(ctx context.Context, id string) error
	LoginLocks(ctx context.Context, username, ip string, now time.Time) (store.LoginLocks, error)
	RecordLoginFailure(ctx context.Context, username, ip string, p store.ThrottlePolicy, now time.Time) ([]string, error)
	RecordLoginSuccess(ctx context.Context, userID, username, ip string, now time.Time) error

	CreateRefreshToken(ctx context.Context, t store.RefreshToken) error
	RotateRefreshToken(ctx context.Context, oldID string, next store.RefreshToken) error
	RevokeRefreshToken(ctx context.Context, id string) error

	CreateCollector(ctx context.Context, name, hostname, tokenID string) (api.Collector, error)
	Collector(ctx context.Context, id string) (api.Collector, error)
	ListCollectors(ctx context.Context) ([]api.Collector, error)
	CollectorTokenActive(ctx context.Context, collectorID, tokenID string) (bool, error)
	DeleteCollector(ctx context.Context, id string) error
	CollectorConfig(ctx context.Context, collectorID string) (api.CollectorConfig, error)
	PutCollectorConfig(ctx context.Context, cfg api.CollectorConfig, updatedBy string) (api.CollectorConfig, error)

	Audit(ctx context.Context, e api.AuditEntry) error
	ListAudit(ctx context.Context, q store.AuditQuery) ([]api.AuditEntry, error)

	IngestFor(ctx context.Context, collectorID, tokenID string, req *api.PushRequest) (store.IngestResult, error)
	QueryMetrics(ctx context.Context, q store.MetricsQuery) ([]api.MetricSample, error)

	Replication(ctx context.Context, collectorID string) ([]api.CollectorTopology, error)
	ListenTopology(ctx context.Context, fn func(collectorID string)) error
	TrackedClusters(ctx context.Context) (map[string]store.TrackedCluster, error)
	ClusterNames(ctx context.Context) (map[string]string, error)
	RecordTopology(ctx context.Context, now time.Time, changes []store.ClusterChange) ([]api.Event, error)
	TopologyAt(ctx context.Context, at time.Time) ([]api.ClusterView, error)
	ClusterHistory(ctx context.Context, key string, since, until time.Time) (api.ClusterHistory, error)
	Events(ctx context.Context, q store.EventQuery) ([]api.Event, error)
	Event(ctx context.Context, id int64) (api.Event, error)

	RecordRequestStats(ctx context.Context, st store.RequestStats) error
	Observe(ctx context.Context, now time.Time) ([]alerting.Observation, error)
	SaveAlerts(ctx context.Context, at time.Time, by string, alerts []alerting.Alert) error
	LoadAlerts(ctx context.Context) (store.AlertsState, error)
	SetTeamRoles(ctx context.Context, userID string, roles []string) error
	CreateRunbookRun(ctx context.Context, run api.RunbookRun, user, holder string, ttl time.Duration) (api.RunbookRun, store.RunbookLease, error)
	TakeRunbookLease(ctx context.Context, id, token, user, holder string, ttl time.Duration) (store.RunbookLease, error)
	ReleaseRunbookLease(ctx context.Context, id, token string) error
	SaveRunbookRun(ctx context.Context, id, token string, run api.RunbookRun, records []json.RawMessage, user string, ttl time.Duration) error
	AppendRunbookRecord(ctx context.Context, id, token, user string, record json.RawMessage) error
	RunbookRecords(ctx context.Context, id string) ([]api.RunbookRecord, error)
	RunbookVersion(ctx context.Context, id string) (int64, error)
	RunbookRun(ctx context.Context, id string) (api.RunbookRun, error)
	RunbookRuns(ctx context.Context, limit int) ([]api.RunbookRun, error)
	PendingApprovals(ctx context.Context) ([]api.PendingApproval, error)
	DecideApproval(ctx context.Context, id string, req api.ApprovalRequest, user string) (api.Approval, error)

	RunAsLeader(ctx context.Context, lockID int64, retry time.Duration, fn func(ctx context.Context))
	Maintain(ctx context.Context, now time.Time) error
	MaintainRollups(ctx context.Context, now time.Time) (store.RollupProgress, error)
}
