package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

var errEmptyID = errors.New("client: empty id")

// Health is GET /health. A 503 answer still returns the decoded body together with an *APIError, so a
// caller can show which dependency is down.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	resp, err := c.do(ctx, call{method: http.MethodGet, path: "/health", want: []int{http.StatusOK}})
	var h api.Health
	var apiErr *APIError
	switch {
	case err == nil:
		return h, decode(resp, "health", &h)
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
		if decode(resp, "health", &h) == nil && h.Status != "" {
			if apiErr.Code == statusCode(http.StatusServiceUnavailable) {
				apiErr.Message = "status " + h.Status
			}
		}
		return h, err
	default:
		return h, err
	}
}

// Ready is GET /health/ready: the readiness probe (never rate limited). A 503 is an answer, not an
// error: the status says whether the server wants traffic, err only that it could not be asked.
func (c *Client) Ready(ctx context.Context) (api.Probe, int, error) {
	resp, err := c.do(ctx, call{method: http.MethodGet, path: "/health/ready", want: []int{http.StatusOK}})
	var p api.Probe
	var apiErr *APIError
	switch {
	case err == nil:
		return p, http.StatusOK, decode(resp, "readiness", &p)
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
		_ = decode(resp, "readiness", &p)
		return p, http.StatusServiceUnavailable, nil
	default:
		return p, 0, err
	}
}

// Login is POST /auth/login.
func (c *Client) Login(ctx context.Context, username, password string) (api.TokenPair, error) {
	return c.tokenCall(ctx, "/auth/login", api.LoginRequest{Username: username, Password: password})
}

// Refresh is POST /auth/refresh: it rotates the pair; the old refresh token stops working.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (api.TokenPair, error) {
	return c.tokenCall(ctx, "/auth/refresh", api.RefreshRequest{RefreshToken: refreshToken})
}

func (c *Client) tokenCall(ctx context.Context, path string, body any) (api.TokenPair, error) {
	var tp api.TokenPair
	resp, err := c.do(ctx, call{method: http.MethodPost, path: path, body: body, want: []int{http.StatusOK}})
	if err != nil {
		return tp, err
	}
	return tp, decode(resp, "token pair", &tp)
}

// Logout is POST /auth/logout: it revokes refreshToken.
func (c *Client) Logout(ctx context.Context, refreshToken string) error {
	_, err := c.do(ctx, call{
		method: http.MethodPost, path: "/auth/logout", body: api.RefreshRequest{RefreshToken: refreshToken},
		want: []int{http.StatusOK, http.StatusNoContent},
	})
	return err
}

// Register is POST /collectors/register with the shared registration secret.
func (c *Client) Register(ctx context.Context, registrationSecret string, req api.RegisterRequest) (api.RegisterResponse, error) {
	var rr api.RegisterResponse
	resp, err := c.do(ctx, call{
		method: http.MethodPost, path: "/collectors/register", body: req,
		header: map[string]string{"X-Registration-Secret": registrationSecret},
		want:   []int{http.StatusCreated, http.StatusOK},
	})
	if err != nil {
		return rr, err
	}
	return rr, decode(resp, "registration", &rr)
}

// PushGzip is POST /metrics/push; gzippedJSON is a gzip-compressed JSON api.PushRequest.
func (c *Client) PushGzip(ctx context.Context, gzippedJSON []byte) (api.PushResponse, error) {
	var pr api.PushResponse
	resp, err := c.do(ctx, call{
		method: http.MethodPost, path: "/metrics/push", body: gzippedJSON,
		header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"},
		want:   []int{http.StatusAccepted, http.StatusOK},
	})
	if err != nil {
		return pr, err
	}
	return pr, decode(resp, "push answer", &pr)
}

// MetricsQuery selects samples for GET /metrics; zero fields are left out of the query.
type MetricsQuery struct {
	CollectorID, Name string
	Since, Until      time.Time
	Limit             int
	Step              string // "1m" or "1h": the rollups; "" the raw samples
}

// Values encodes q as the query string of GET /metrics.
func (q MetricsQuery) Values() url.Values {
	v := queryValues{}
	v.text("collector_id", q.CollectorID)
	v.text("name", q.Name)
	v.text("step", q.Step)
	v.time("since", q.Since)
	v.time("until", q.Until)
	v.count("limit", q.Limit)
	return url.Values(v)
}

// queryValues builds a query string, leaving zero values out.
type queryValues url.Values

func (v queryValues) text(k, s string) {
	if s != "" {
		url.Values(v).Set(k, s)
	}
}

func (v queryValues) time(k string, t time.Time) {
	if !t.IsZero() {
		url.Values(v).Set(k, t.UTC().Format(time.RFC3339Nano))
	}
}

func (v queryValues) count(k string, n int) {
	if n > 0 {
		url.Values(v).Set(k, strconv.Itoa(n))
	}
}

// Metrics is GET /metrics.
func (c *Client) Metrics(ctx context.Context, q MetricsQuery) ([]api.MetricSample, error) {
	var mr api.MetricsResponse
	if err := c.getJSON(ctx, "/metrics", "", q.Values(), "metrics", &mr); err != nil {
		return nil, err
	}
	return mr.Samples, nil
}

// Collectors is GET /collectors.
func (c *Client) Collectors(ctx context.Context) ([]api.Collector, error) {
	var cr api.CollectorsResponse
	if err := c.getJSON(ctx, "/collectors", "", nil, "collectors", &cr); err != nil {
		return nil, err
	}
	return cr.Collectors, nil
}

// Collector is GET /collectors/{id}.
func (c *Client) Collector(ctx context.Context, id string) (api.Collector, error) {
	var col api.Collector
	if id == "" {
		return col, errEmptyID
	}
	return col, c.getJSON(ctx, "/collectors/{id}", id, nil, "collector", &col)
}

// DeleteCollector is DELETE /collectors/{id}: deregisters it and revokes its token.
func (c *Client) DeleteCollector(ctx context.Context, id string) error {
	return c.deleteByID(ctx, "/collectors/{id}", id)
}

// Config is GET /config/{collector_id}.
func (c *Client) Config(ctx context.Context, collectorID string) (api.CollectorConfig, error) {
	var cfg api.CollectorConfig
	if collectorID == "" {
		return cfg, errEmptyID
	}
	return cfg, c.getJSON(ctx, "/config/{id}", collectorID, nil, "config", &cfg)
}

// PutConfig is PUT /config/{cfg.CollectorID}; it returns the stored configuration.
func (c *Client) PutConfig(ctx context.Context, cfg api.CollectorConfig) (api.CollectorConfig, error) {
	var out api.CollectorConfig
	if cfg.CollectorID == "" {
		return out, errEmptyID
	}
	resp, err := c.do(ctx, call{
		method: http.MethodPut, path: "/config/{id}", pathID: cfg.CollectorID, body: cfg,
		want: []int{http.StatusOK},
	})
	if err != nil {
		return out, err
	}
	return out, decode(resp, "config", &out)
}

// Replication is GET /replication, for one collector or (collectorID "") all of them.
func (c *Client) Replication(ctx context.Context, collectorID string) (api.ReplicationResponse, error) {
	var rr api.ReplicationResponse
	var q url.Values
	if collectorID != "" {
		q = url.Values{"collector_id": {collectorID}}
	}
	return rr, c.getJSON(ctx, "/replication", "", q, "replication", &rr)
}

// Alerts is GET /alerts.
func (c *Client) Alerts(ctx context.Context) (api.AlertsResponse, error) {
	var ar api.AlertsResponse
	return ar, c.getJSON(ctx, "/alerts", "", nil, "alerts", &ar)
}

// AlertTest is POST /alerts/test: the delivery self-test's synthetic alert, sent.
func (c *Client) AlertTest(ctx context.Context) (api.AlertTest, error) {
	var at api.AlertTest
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/alerts/test", want: []int{http.StatusAccepted}})
	if err != nil {
		return at, err
	}
	return at, decode(resp, "alert test", &at)
}

// AlertTestStatus is GET /alerts/test/{id}: which Alertmanagers hold the test alert.
func (c *Client) AlertTestStatus(ctx context.Context, id string) (api.AlertTest, error) {
	var at api.AlertTest
	return at, c.getJSON(ctx, "/alerts/test/{id}", id, nil, "alert test", &at)
}

// AlertTestResolve is DELETE /alerts/test/{id}: the test alert, resolved.
func (c *Client) AlertTestResolve(ctx context.Context, id string) (api.AlertTest, error) {
	var at api.AlertTest
	resp, err := c.do(ctx, call{method: http.MethodDelete, path: "/alerts/test/{id}", pathID: id, want: []int{http.StatusOK}})
	if err != nil {
		return at, err
	}
	return at, decode(resp, "alert test", &at)
}

// TestAlertDelivery runs the delivery self-test: sends the synthetic alert, asks every poll until
// every Alertmanager holds it or wait has passed, then resolves it. It returns the last answer (the
// caller tells who got it by Alertmanagers[i].OK); an error only when the API could not be asked.
func (c *Client) TestAlertDelivery(ctx context.Context, wait, poll time.Duration) (api.AlertTest, error) {
	sent, err := c.AlertTest(ctx)
	if err != nil {
		return sent, err
	}
	deadline := time.Now().Add(wait)
	last := sent
	for {
		if last, err = c.AlertTestStatus(ctx, sent.ID); err != nil {
			return last, err
		}
		all := true
		for _, am := range last.Alertmanagers {
			all = all && am.OK
		}
		if all || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(poll):
		}
	}
	_, err = c.AlertTestResolve(ctx, sent.ID)
	return last, err
}

// CreateSilence is POST /alerts/silences.
func (c *Client) CreateSilence(ctx context.Context, req api.SilenceRequest) (api.SilenceResponse, error) {
	var sr api.SilenceResponse
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/alerts/silences", body: req, want: []int{http.StatusCreated}})
	if err != nil {
		return sr, err
	}
	return sr, decode(resp, "silence", &sr)
}

// Users is GET /users.
func (c *Client) Users(ctx context.Context) ([]api.User, error) {
	var ur api.UsersResponse
	if err := c.getJSON(ctx, "/users", "", nil, "users", &ur); err != nil {
		return nil, err
	}
	return ur.Users, nil
}

// CreateUser is POST /users.
func (c *Client) CreateUser(ctx context.Context, req api.CreateUserRequest) (api.User, error) {
	var u api.User
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/users", body: req, want: []int{http.StatusCreated, http.StatusOK}})
	if err != nil {
		return u, err
	}
	return u, decode(resp, "user", &u)
}

// DeleteUser is DELETE /users/{id}.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.deleteByID(ctx, "/users/{id}", id)
}

// Audit is GET /audit, newest entries first as the server orders them; limit <= 0 takes the server's default.
func (c *Client) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	var ar api.AuditResponse
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	if err := c.getJSON(ctx, "/audit", "", q, "audit", &ar); err != nil {
		return nil, err
	}
	return ar.Entries, nil
}

func (c *Client) getJSON(ctx context.Context, path, id string, q url.Values, what string, v any) error {
	resp, err := c.do(ctx, call{method: http.MethodGet, path: path, pathID: id, query: q, want: []int{http.StatusOK}})
	if err != nil {
		return err
	}
	return decode(resp, what, v)
}

func (c *Client) deleteByID(ctx context.Context, path, id string) error {
	if id == "" {
		return errEmptyID
	}
	_, err := c.do(ctx, call{method: http.MethodDelete, path: path, pathID: id, want: []int{http.StatusOK, http.StatusNoContent}})
	return err
}
