package agent

import (
	"context"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pganalytics/pganalytics/internal/api"
)

// configRefresh is how often a running collector reads its stored configuration again.
const configRefresh = time.Minute

// ConfigSource reads this collector's configuration as stored by the API
// (PUT /api/v1/config/{collector_id}); client.Client implements it.
type ConfigSource interface {
	Config(ctx context.Context, collectorID string) (api.CollectorConfig, error)
}

// CollectorIDFromToken is the collector id a token names (its subject). The token is not
// verified here: the API does that on every request; this only tells the collector who it is.
func CollectorIDFromToken(token string) string {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		return ""
	}
	return claims.Subject
}

// settings are the values the stored configuration may change.
type settings struct {
	interval     time.Duration
	replication  bool          // the [pg_replication] families
	queryTimeout time.Duration // caps each instance's own timeout; 0: the instances' own
}

// effective merges the stored configuration into the local file's settings, the local file being
// the floor: the interval is never shorter than the file's, and families the file leaves out stay
// out (the API can turn [pg_replication] off, not on). A configuration never stored changes
// nothing. belowFloor reports a stored interval shorter than the file's.
func effective(local settings, stored api.CollectorConfig) (s settings, belowFloor bool) {
	s = local
	if stored.UpdatedAt == nil {
		return s, false
	}
	if want := time.Duration(stored.IntervalSeconds) * time.Second; want > 0 {
		if want < local.interval {
			belowFloor = true
		} else {
			s.interval = want
		}
	}
	s.replication = local.replication && stored.PgReplicationEnabled
	if stored.QueryTimeoutSeconds > 0 {
		s.queryTimeout = time.Duration(stored.QueryTimeoutSeconds) * time.Second
	}
	return s, belowFloor
}

// refreshConfig reads the stored configuration and applies it, logging what changed; it returns
// the interval in force. Failures (the API away, an old server) leave everything as it is.
func (a *Agent) refreshConfig(ctx context.Context, src ConfigSource, local settings) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, err := src.Config(ctx, a.collectorID)
	if err != nil {
		a.log.Debug("stored configuration not read; the local one stays", "err", err)
		return a.current.interval
	}
	next, belowFloor := effective(local, stored)
	if belowFloor && !a.warnedFloor {
		a.warnedFloor = true
		a.log.Warn("the API's interval is shorter than the local file's; the local file is the floor",
			"api_interval", time.Duration(stored.IntervalSeconds)*time.Second, "local_interval", local.interval)
	}
	if next != a.current {
		a.log.Info("configuration from the API applied", "interval", next.interval, "was", a.current.interval,
			"pg_replication", next.replication, "query_timeout", next.queryTimeout, "updated_by", stored.UpdatedBy)
		a.current = next
		a.setReplication(next)
		for i, t := range a.targets {
			d := a.localTimeouts[i]
			if next.queryTimeout > 0 {
				d = min(d, next.queryTimeout) // the local file's timeout is a ceiling the API cannot raise
			}
			t.SetTimeout(d)
		}
	}
	return a.current.interval
}

// setReplication makes the replication families run every PgReplication.Interval at the current
// collection interval, or not at all.
func (a *Agent) setReplication(s settings) {
	a.every = 0
	if s.replication && s.interval > 0 {
		a.every = max(int64(a.cfg.PgReplication.Interval.D()/s.interval), 1)
	}
}
