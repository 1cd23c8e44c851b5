// Package session is the console's authenticated connection to the API: it logs in lazily (in the
// first command that needs it, never before the first frame), refreshes the access token before it
// expires, logs in again when the refresh token is refused, and retries a request once after a 401.
// It implements the console's Session and API interfaces over the typed client.
package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui"
	"github.com/pganalytics/pganalytics/tui/conn"
)

// refreshAhead is how long before expiry the access token is renewed, so no request carries a token
// that expires in flight.
const refreshAhead = 30 * time.Second

// Session holds the tokens of one user. It is safe for concurrent use: views fetch in parallel.
type Session struct {
	base               *client.Client // no token
	username, password string
	token              string // a fixed access token given instead of credentials
	now                func() time.Time

	mu      sync.Mutex
	pair    api.TokenPair
	expires time.Time
	authErr error // a refused login: retrying cannot help
}

// New returns a session for username/password, or for a fixed token when username is empty.
func New(base *client.Client, username, password, token string) *Session {
	return &Session{base: base.WithToken(""), username: username, password: password, token: token, now: time.Now}
}

// Login makes sure the session holds a valid token and says who it is.
func (s *Session) Login(ctx context.Context) (tui.Identity, error) {
	if _, _, err := s.client(ctx); err != nil {
		return tui.Identity{}, err
	}
	if s.token != "" && s.username == "" {
		return tui.Identity{User: "token"}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return tui.Identity{User: s.username, Role: s.pair.Role}, nil
}

// AuthErr is the refused login, if any.
func (s *Session) AuthErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authErr
}

// client returns a client carrying a token valid for at least refreshAhead, and that token.
func (s *Session) client(ctx context.Context) (*client.Client, string, error) {
	if s.token != "" && s.username == "" {
		return s.base.WithToken(s.token), s.token, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.authErr != nil {
		return nil, "", s.authErr
	}
	if s.pair.AccessToken == "" || !s.now().Add(refreshAhead).Before(s.expires) {
		if err := s.renew(ctx); err != nil {
			return nil, "", err
		}
	}
	return s.base.WithToken(s.pair.AccessToken), s.pair.AccessToken, nil
}

// renew refreshes the pair, or logs in when there is no refresh token or the server refuses it.
func (s *Session) renew(ctx context.Context) error {
	if s.pair.RefreshToken != "" {
		pair, err := s.base.Refresh(ctx, s.pair.RefreshToken)
		if err == nil {
			s.keep(pair)
			return nil
		}
		if !refused(err) {
			return err // unreachable: keep the refresh token for the next try
		}
	}
	pair, err := s.base.Login(ctx, s.username, s.password)
	if err != nil {
		if refused(err) {
			s.authErr = fmt.Errorf("%w: user %q: %w", conn.ErrAuth, s.username, err)
			return s.authErr
		}
		return err
	}
	s.keep(pair)
	return nil
}

func (s *Session) keep(pair api.TokenPair) {
	s.pair = pair
	s.expires = s.now().Add(time.Duration(pair.ExpiresIn) * time.Second)
}

// forget drops the access token after the server refused it (revoked, or the clock is off), so the
// next request refreshes.
func (s *Session) forget(refusedToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pair.AccessToken == refusedToken {
		s.expires = time.Time{}
	}
}

func refused(err error) bool {
	var apiErr *client.APIError
	return errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden)
}

func unauthorized(err error) bool {
	var apiErr *client.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized
}

// Do runs call with a valid token, once more with a fresh one if the server answers 401.
func (s *Session) Do(ctx context.Context, call func(*client.Client) error) error {
	for attempt := 0; ; attempt++ {
		c, token, err := s.client(ctx)
		if err != nil {
			return err
		}
		err = call(c)
		if attempt > 0 || !unauthorized(err) || (s.token != "" && s.username == "") {
			return err
		}
		s.forget(token)
	}
}

// Replication is GET /replication.
func (s *Session) Replication(ctx context.Context, collectorID string) (resp api.ReplicationResponse, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { resp, e = c.Replication(ctx, collectorID); return e })
	return resp, err
}

// StreamReplication follows the SSE stream until it breaks or ctx ends.
func (s *Session) StreamReplication(ctx context.Context, fn func(api.CollectorTopology)) error {
	return s.Do(ctx, func(c *client.Client) error { return c.StreamReplication(ctx, fn) })
}

// ReplicationAt is GET /replication?at=.
func (s *Session) ReplicationAt(ctx context.Context, at time.Time) (resp api.ReplicationResponse, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { resp, e = c.ReplicationAt(ctx, at); return e })
	return resp, err
}

// Events is GET /events.
func (s *Session) Events(ctx context.Context, q client.EventsQuery) (resp api.EventsResponse, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { resp, e = c.Events(ctx, q); return e })
	return resp, err
}

// StreamEvents follows the SSE stream's replication events until it breaks or ctx ends.
func (s *Session) StreamEvents(ctx context.Context, fn func(api.Event)) error {
	return s.Do(ctx, func(c *client.Client) error { return c.Stream(ctx, client.StreamHandlers{Event: fn}) })
}

// Collectors is GET /collectors.
func (s *Session) Collectors(ctx context.Context) (list []api.Collector, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { list, e = c.Collectors(ctx); return e })
	return list, err
}

// DeleteCollector is DELETE /collectors/{id}.
func (s *Session) DeleteCollector(ctx context.Context, id string) error {
	return s.Do(ctx, func(c *client.Client) error { return c.DeleteCollector(ctx, id) })
}

// Alerts is GET /alerts.
func (s *Session) Alerts(ctx context.Context) (resp api.AlertsResponse, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { resp, e = c.Alerts(ctx); return e })
	return resp, err
}

// CreateSilence is POST /alerts/silences.
func (s *Session) CreateSilence(ctx context.Context, req api.SilenceRequest) (resp api.SilenceResponse, err error) {
	err = s.Do(ctx, func(c *client.Client) (e error) { resp, e = c.CreateSilence(ctx, req); return e })
	return resp, err
}

// Logout revokes the refresh token, if the session logged in.
func (s *Session) Logout(ctx context.Context) error {
	s.mu.Lock()
	pair := s.pair
	s.pair, s.expires = api.TokenPair{}, time.Time{}
	s.mu.Unlock()
	if pair.RefreshToken == "" {
		return nil
	}
	return s.base.WithToken(pair.AccessToken).Logout(ctx, pair.RefreshToken)
}

// PendingApprovals is GET /runbook/approvals.
func (s *Session) PendingApprovals(ctx context.Context) (p []api.PendingApproval, err error) {
	err = s.Do(ctx, func(c *client.Client) (err error) { p, err = c.PendingApprovals(ctx); return err })
	return p, err
}

// DecideApproval is POST /runbook/runs/{id}/approvals.
func (s *Session) DecideApproval(ctx context.Context, runID string, req api.ApprovalRequest) (a api.Approval, err error) {
	err = s.Do(ctx, func(c *client.Client) (err error) { a, err = c.DecideApproval(ctx, runID, req); return err })
	return a, err
}
