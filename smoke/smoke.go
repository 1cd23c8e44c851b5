// Package smoke runs the deployment smoke checks of the v3.2.0 plan (Phase 2 Steps 2, 4, 7, 9 and
// Phase 3 Steps 4, 8) against a running pgAnalytics API: health, security headers, TLS, login, RBAC,
// token rotation, CORS, injection probes, error hygiene, registration, freshness, the seed's SQL and
// rate limiting. It is a library: pgactl smoke, the console and the runbook engine stream its results
// through their own reporters.
package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/client"
)

// Status is a check's verdict.
type Status string

// The three verdicts; a skip always says why.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Result is one finished check. Message is one line: on failure, what is wrong and what to fix.
type Result struct {
	Name     string
	Status   Status
	Duration time.Duration
	Message  string
}

// Summary totals a run.
type Summary struct {
	Passed, Failed, Skipped int
	Duration                time.Duration
}

// ErrAuthFailed means the admin login the suite needs was refused: the credentials are wrong, not the
// deployment (pgactl exits 4).
var ErrAuthFailed = errors.New("admin login failed")

// Config says what to check and with which credentials.
type Config struct {
	// Client targets the API; its TLS settings are used and its token ignored (each check picks its
	// own credentials).
	Client                         *client.Client
	AdminUsername, AdminPassword   string // PGACTL_USERNAME / PGACTL_PASSWORD
	ViewerUsername, ViewerPassword string // for the RBAC check
	DatabaseURL                    string // enables the SQL checks
	CORSOrigin                     string // an origin the server allows (PGACTL_CORS_ORIGIN)
	// CertMinValidity fails the TLS check when the certificate expires sooner; default 14 days.
	CertMinValidity time.Duration
	// RateLimitRequests is how many requests the rate-limit check sends at most before expecting a
	// 429; default 300 (the server's default budget is 100 per minute).
	RateLimitRequests int
	// CheckTimeout bounds each check; default 30s (the rate-limit check gets twice that).
	CheckTimeout time.Duration
	Only, Skip   []string // check names
}

// EnvCORSOrigin names an origin the API allows, for the cors check.
const EnvCORSOrigin = "PGACTL_CORS_ORIGIN"

// ConfigFor fills a Config from a resolved pgactl context (credentials, database URL) and, through
// getenv, PGACTL_CORS_ORIGIN. Callers still set Only/Skip and prompt for passwords the context lacks.
func ConfigFor(c *client.Client, ctx client.Context, getenv func(string) string) Config {
	return Config{
		Client:         c,
		AdminUsername:  ctx.Username,
		AdminPassword:  ctx.Password,
		ViewerUsername: ctx.ViewerUsername,
		ViewerPassword: ctx.ViewerPassword,
		DatabaseURL:    ctx.DatabaseURL,
		CORSOrigin:     getenv(EnvCORSOrigin),
	}
}

// check is one named, independent verification.
type check struct {
	name string
	desc string
	run  func(ctx context.Context, e *env) outcome
}

// outcome is what a check function decides; the suite adds name and timing.
type outcome struct {
	status  Status
	message string
}

func pass(format string, args ...any) outcome {
	return outcome{StatusPass, fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) outcome {
	return outcome{StatusFail, fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) outcome {
	return outcome{StatusSkip, fmt.Sprintf(format, args...)}
}

// Check names, in run order. rate-limit runs last because it spends the request budget.
const (
	CheckHealth             = "health"
	CheckSecurityHeaders    = "security-headers"
	CheckTLS                = "tls-certificate"
	CheckLogin              = "login"
	CheckRBAC               = "rbac"
	CheckRefreshRotation    = "refresh-rotation"
	CheckCORS               = "cors"
	CheckSQLInjection       = "sql-injection"
	CheckErrorLeaks         = "error-leaks"
	CheckRegistrationSecret = "registration-secret"
	CheckMetricsFreshness   = "metrics-freshness"
	CheckSQLMetricsVolume   = "sql-metrics-volume"
	CheckSQLPasswordHashes  = "sql-password-hashes"
	CheckRateLimit          = "rate-limit"
)

func allChecks() []check {
	return []check{
		{CheckHealth, "GET /api/v1/health answers 200 with status healthy and the documented JSON shape", checkHealth},
		{CheckSecurityHeaders, "responses carry X-Frame-Options: DENY, X-Content-Type-Options: nosniff, a CSP, and HSTS over TLS", checkSecurityHeaders},
		{CheckTLS, "the server certificate verifies and does not expire within the minimum validity", checkTLS},
		{CheckLogin, "the admin logs in (Bearer pair, role admin); a wrong password and an unknown user get the same 401", checkLogin},
		{CheckRBAC, "a viewer gets 403 on GET /api/v1/users (admin-only), an admin 200", checkRBAC},
		{CheckRefreshRotation, "refreshing rotates the pair and the old refresh token is refused", checkRefreshRotation},
		{CheckCORS, "a preflight from the allowed origin gets CORS headers, one from another origin does not", checkCORS},
		{CheckSQLInjection, "injection probes on GET /api/v1/metrics parameters and path ids get 4xx or empty answers, never 5xx", checkSQLInjection},
		{CheckErrorLeaks, "error responses are the JSON envelope and leak no stack trace, SQL, file path or secret", checkErrorLeaks},
		{CheckRegistrationSecret, "collector registration with a wrong or missing secret is refused (401/403)", checkRegistrationSecret},
		{CheckMetricsFreshness, "every collector that pushed did so within two intervals", checkMetricsFreshness},
		{CheckSQLMetricsVolume, "the seed's metrics-volume SQL finds samples in the last hour", checkSQLMetricsVolume},
		{CheckSQLPasswordHashes, "every users.password_hash is an argon2id or bcrypt PHC string", checkSQLPasswordHashes},
		{CheckRateLimit, "101+ requests to /api/v1/health get a 429 with Retry-After", checkRateLimit},
	}
}

// Checks lists every check name in run order.
func Checks() []string {
	cs := allChecks()
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names
}

// Describe says in one line what a check verifies ("" for an unknown name).
func Describe(name string) string {
	for _, c := range allChecks() {
		if c.name == name {
			return c.desc
		}
	}
	return ""
}

// Suite is a configured run. Build it with New; it is safe to Run more than once.
type Suite struct {
	cfg      Config
	selected []check
}

// New validates cfg (unknown check names in Only/Skip are errors) and applies defaults.
func New(cfg Config) (*Suite, error) {
	if cfg.Client == nil {
		return nil, errors.New("smoke: no client")
	}
	known := Checks()
	for _, list := range [][]string{cfg.Only, cfg.Skip} {
		for _, n := range list {
			if !slices.Contains(known, n) {
				return nil, fmt.Errorf("smoke: unknown check %q (checks: %s)", n, strings.Join(known, ", "))
			}
		}
	}
	if (cfg.AdminUsername == "") != (cfg.AdminPassword == "") {
		return nil, errors.New("smoke: the admin needs both a username and a password")
	}
	if (cfg.ViewerUsername == "") != (cfg.ViewerPassword == "") {
		return nil, errors.New("smoke: the viewer needs both a username and a password")
	}
	if cfg.CertMinValidity <= 0 {
		cfg.CertMinValidity = 14 * 24 * time.Hour
	}
	if cfg.RateLimitRequests <= 0 {
		cfg.RateLimitRequests = 300
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 30 * time.Second
	}
	s := &Suite{cfg: cfg}
	for _, c := range allChecks() {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, c.name) {
			continue
		}
		if slices.Contains(cfg.Skip, c.name) {
			continue
		}
		s.selected = append(s.selected, c)
	}
	return s, nil
}

// Selected lists the names this suite will run, in order.
func (s *Suite) Selected() []string {
	names := make([]string, len(s.selected))
	for i, c := range s.selected {
		names[i] = c.name
	}
	return names
}

// Stream runs the selected checks one by one, calling fn with each result as it finishes. Before the
// first check it makes sure the API answers at all and, when admin credentials are set, logs in: an
// unreachable API returns an error matching client.ErrUnreachable and a refused admin login
// ErrAuthFailed, with no results. A cancelled ctx stops the run and returns ctx.Err().
func (s *Suite) Stream(ctx context.Context, fn func(Result)) (Summary, error) {
	start := time.Now()
	var sum Summary
	e, err := s.setup(ctx)
	if err != nil {
		return sum, err
	}
	defer e.close(ctx)
	for _, c := range s.selected {
		if err := ctx.Err(); err != nil {
			sum.Duration = time.Since(start)
			return sum, err
		}
		r := s.runOne(ctx, e, c)
		switch r.Status {
		case StatusPass:
			sum.Passed++
		case StatusFail:
			sum.Failed++
		default:
			sum.Skipped++
		}
		fn(r)
	}
	sum.Duration = time.Since(start)
	return sum, ctx.Err()
}

func (s *Suite) runOne(ctx context.Context, e *env, c check) Result {
	timeout := s.cfg.CheckTimeout
	if c.name == CheckRateLimit {
		timeout *= 2
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	began := time.Now()
	o := c.run(cctx, e)
	if o.status == StatusFail && cctx.Err() != nil && ctx.Err() == nil {
		o.message = fmt.Sprintf("timed out after %s: %s", timeout, o.message)
	}
	return Result{Name: c.name, Status: o.status, Duration: time.Since(began), Message: oneLine(o.message)}
}

// Run is the adapter for callers that only want a log: it streams plain-text results to w and
// returns how many checks failed. err is non-nil when the suite could not run (unreachable, admin
// login refused, cancelled).
func (s *Suite) Run(ctx context.Context, w io.Writer) (failed int, err error) {
	rep := NewTextReporter(w, false)
	if err := rep.Start(s.Selected()); err != nil {
		return 0, err
	}
	var werr error
	sum, err := s.Stream(ctx, func(r Result) {
		if e := rep.Result(r); e != nil && werr == nil {
			werr = e
		}
	})
	if err != nil {
		return sum.Failed, err
	}
	if werr != nil {
		return sum.Failed, werr
	}
	return sum.Failed, rep.Finish(sum)
}

// env is what checks share: the target and, once, an admin session. Each check makes its own
// requests; none depends on another having run.
type env struct {
	cfg        Config
	anon       *client.Client // no token
	admin      *client.Client // admin access token; nil without admin credentials
	adminToken string
	refresh    string // the shared session's refresh token, revoked when the run ends
	https      bool
}

// close logs the shared admin session out, best effort: a smoke run leaves no live refresh token.
func (e *env) close(ctx context.Context) {
	if e.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = e.admin.Logout(ctx, e.refresh)
}

// rateLimitWaits is how many 429s each smoke request waits out: a run right after another one finds
// the budget spent (the rate-limit check drains it) and must not report that as failed checks.
const rateLimitWaits = 3

func (s *Suite) setup(ctx context.Context) (*env, error) {
	c := s.cfg.Client.WithRateLimitRetries(rateLimitWaits)
	e := &env{
		cfg:   s.cfg,
		anon:  c.WithToken(""),
		https: strings.HasPrefix(s.cfg.Client.BaseURL(), "https://"),
	}
	// One cheap request tells "nothing listens" apart from "a check failed".
	if _, err := e.anon.Do(ctx, client.RawRequest{Method: http.MethodGet, Path: client.APIPrefix + "/health"}); err != nil {
		return nil, fmt.Errorf("smoke: %w", err)
	}
	if s.cfg.AdminUsername == "" {
		return e, nil
	}
	tp, err := e.anon.Login(ctx, s.cfg.AdminUsername, s.cfg.AdminPassword)
	if err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden) {
			return nil, fmt.Errorf("%w: user %q: %s", ErrAuthFailed, s.cfg.AdminUsername, apiErr.Message)
		}
		return nil, fmt.Errorf("smoke: admin login: %w", err)
	}
	e.adminToken, e.refresh = tp.AccessToken, tp.RefreshToken
	e.admin = c.WithToken(tp.AccessToken)
	return e, nil
}

// needAdmin is the skip for checks that need an admin session.
func (e *env) needAdmin() (outcome, bool) {
	if e.admin == nil {
		return skip("no admin credentials: set PGACTL_USERNAME and PGACTL_PASSWORD"), false
	}
	return outcome{}, true
}

// oneLine keeps a message on one line: reporters and the TUI rely on it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
