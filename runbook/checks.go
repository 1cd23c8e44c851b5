package runbook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

// rateLimitWaits is how many 429 answers one check request waits out before it fails.
const rateLimitWaits = 5

// metricsWindow is how far back the api-metrics check looks for samples.
const metricsWindow = 10 * time.Minute

// errSmokeNotWired is what the smoke check says when the caller injected no suite.
var errSmokeNotWired = errors.New("smoke suite not wired")

func (e *Engine) runCheck(ctx context.Context, s *Step, out *lineWriter) error {
	switch s.Check {
	case CheckHTTPHealth:
		return e.checkHealth(ctx, s, out)
	case CheckSecurityHeaders:
		return e.checkHeaders(ctx, s, out)
	case CheckTLSExpiry:
		return e.checkTLS(ctx, s, out)
	case CheckPostgres:
		return e.checkPostgres(ctx, s, out)
	case CheckPgMonitor:
		return e.checkPgMonitor(ctx, s, out)
	case CheckRegistration:
		return e.checkRegistration(ctx, s, out)
	case CheckAPIMetrics:
		return e.checkAPIMetrics(ctx, s, out)
	case CheckAlertsEvaluated:
		return e.checkAlertsEvaluated(ctx, s, out)
	case CheckAlertDelivery:
		return e.checkAlertDelivery(ctx, s, out)
	case CheckAPIServers:
		return e.checkAPIServers(ctx, s, out)
	case CheckPerformance:
		return e.checkPerformance(ctx, s, out)
	case CheckSecurity:
		return e.checkSecurity(ctx, s, out)
	case CheckGrafana:
		return e.checkGrafana(ctx, s, out)
	case CheckRollbackTrigger:
		return e.checkRollbackTriggers(ctx, s, out)
	case CheckAlertmanager:
		return e.checkAlertmanager(ctx, s, out)
	case CheckSmoke:
		if e.opts.Smoke == nil {
			return errSmokeNotWired
		}
		failed, err := e.opts.Smoke.Run(ctx, out, nil)
		if err != nil {
			return classifyHTTP(fmt.Errorf("smoke suite: %w", err))
		}
		if failed > 0 {
			return fmt.Errorf("%d smoke checks failed", failed)
		}
		return nil
	}
	return fmt.Errorf("unknown check %q", s.Check)
}

// apiClient builds a client for a check's url (the API's base URL).
func (e *Engine) apiClient(s *Step) (*client.Client, error) {
	base, err := e.env.expandStep(s.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if e.env.LoopbackOnly {
		if err := checkLoopbackURL(base); err != nil {
			return nil, fmt.Errorf("environment %s is loopback-only: %w", e.env.Name, err)
		}
	}
	// A 429 is the API asking to wait (e.g. right after the smoke suite spent the budget), not a failed
	// check: calls wait out a few.
	return client.New(client.Options{BaseURL: base, CAFile: e.env.CAFile, Timeout: s.EffectiveTimeout(),
		UserAgent: "pgactl-runbook", RateLimitRetries: rateLimitWaits})
}

// classifyHTTP marks unreachable servers and refused credentials.
func classifyHTTP(err error) error {
	var apiErr *client.APIError
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return &classified{kind: ErrUnreachable, err: err}
	case errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden):
		return &classified{kind: ErrAuth, err: err}
	}
	return err
}

func (e *Engine) checkHealth(ctx context.Context, s *Step, out *lineWriter) error {
	c, err := e.apiClient(s)
	if err != nil {
		return err
	}
	h, err := c.Health(ctx)
	if h.Status != "" {
		out.println(fmt.Sprintf("GET %s%s/health: status %s, version %s, uptime %ds", c.BaseURL(), client.APIPrefix,
			h.Status, orDash(h.Version), h.Uptime))
		names := make([]string, 0, len(h.Checks))
		for k := range h.Checks {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			out.println("  " + k + ": " + h.Checks[k])
		}
	}
	if err != nil {
		return classifyHTTP(fmt.Errorf("health: %w", err))
	}
	if h.Status != "healthy" {
		return fmt.Errorf("health: status %q, want \"healthy\"", h.Status)
	}
	return nil
}

// defaultSecurityHeaders are the headers the API puts on every response (docs/api.md, headers on
// every response); HSTS only with TLS.
func defaultSecurityHeaders(https bool) []string {
	h := []string{"X-Content-Type-Options: nosniff", "X-Frame-Options: DENY", "Content-Security-Policy",
		"Referrer-Policy", "X-Request-ID"}
	if https {
		h = append(h, "Strict-Transport-Security")
	}
	return h
}

func (e *Engine) checkHeaders(ctx context.Context, s *Step, out *lineWriter) error {
	c, err := e.apiClient(s)
	if err != nil {
		return err
	}
	resp, err := c.WithToken("").Do(ctx, client.RawRequest{Method: http.MethodGet, Path: client.APIPrefix + "/health"})
	if err != nil {
		return classifyHTTP(fmt.Errorf("headers: %w", err))
	}
	out.println(fmt.Sprintf("GET %s%s/health: %d", c.BaseURL(), client.APIPrefix, resp.Status))
	want := s.Headers
	if len(want) == 0 {
		want = defaultSecurityHeaders(strings.HasPrefix(c.BaseURL(), "https://"))
	}
	var bad []string
	for _, h := range want {
		name, value, _ := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		got := strings.TrimSpace(resp.Header.Get(name))
		switch {
		case got == "":
			out.println("  MISSING  " + name)
			bad = append(bad, name+" missing")
		case value != "" && !strings.EqualFold(got, value):
			out.println(fmt.Sprintf("  WRONG    %s: %s (want %s)", name, got, value))
			bad = append(bad, name+" is "+got)
		default:
			out.println(fmt.Sprintf("  ok       %s: %s", name, got))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("security headers: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (e *Engine) checkTLS(ctx context.Context, s *Step, out *lineWriter) error {
	raw, err := e.env.expandStep(s.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("tls-expiry needs an https:// URL, got %s", redactURL(raw))
	}
	if e.env.LoopbackOnly && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("environment %s is loopback-only: host %q is not a loopback address", e.env.Name, u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if e.env.CAFile != "" {
		pem, err := os.ReadFile(e.env.CAFile)
		if err != nil {
			return fmt.Errorf("ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca_file %s holds no PEM certificate", e.env.CAFile)
		}
	}
	d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{}}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return fmt.Errorf("certificate of %s is not valid: %w", u.Host, err)
		}
		return &classified{kind: ErrUnreachable, err: fmt.Errorf("tls handshake with %s: %w", u.Host, err)}
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	if len(state.PeerCertificates) == 0 {
		return fmt.Errorf("%s presented no certificate", u.Host)
	}
	leaf := state.PeerCertificates[0]
	expires := leaf.NotAfter
	for _, c := range state.PeerCertificates[1:] {
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	days := int(time.Until(expires).Hours() / 24)
	out.println(fmt.Sprintf("%s: certificate %q issued by %q, valid until %s", u.Host, leaf.Subject.CommonName,
		leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly)))
	out.println(fmt.Sprintf("chain expires %s: %d days left", expires.UTC().Format(time.DateOnly), days))
	minDays := s.MinDays
	if minDays == 0 {
		minDays = DefaultMinDays
	}
	if days < minDays {
		return fmt.Errorf("certificate of %s expires in %d days, fewer than %d", u.Host, days, minDays)
	}
	return nil
}

func (e *Engine) checkPostgres(ctx context.Context, s *Step, out *lineWriter) error {
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var version, user, db string
	var recovery bool
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_user, current_database(), pg_is_in_recovery()`).
		Scan(&version, &user, &db, &recovery)
	if err != nil {
		return fmt.Errorf("query %s: %w", label, err)
	}
	role := "primary"
	if recovery {
		role = "standby (in recovery)"
	}
	out.println(fmt.Sprintf("%s: PostgreSQL %s, %s, connected as %s to %s", label, version, role, user, db))
	return nil
}

func (e *Engine) checkPgMonitor(ctx context.Context, s *Step, out *lineWriter) error {
	role := DefaultRole
	if s.Role != "" {
		r, err := e.env.expandStep(s.Role)
		if err != nil {
			return fmt.Errorf("role: %w", err)
		}
		role = r
	}
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var exists, usable, member bool
	err = conn.QueryRow(ctx, `
SELECT r.oid IS NOT NULL,
       COALESCE(pg_has_role(r.oid, 'pg_monitor', 'USAGE'), false),
       COALESCE(pg_has_role(r.oid, 'pg_monitor', 'MEMBER'), false)
FROM (SELECT $1::text AS name) AS want
LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = want.name`, role).Scan(&exists, &usable, &member)
	if err != nil {
		return fmt.Errorf("query %s: %w", label, err)
	}
	switch {
	case !exists:
		return fmt.Errorf("role %q does not exist on %s", role, label)
	case usable:
		out.println(fmt.Sprintf("%s: role %s holds pg_monitor's privileges", label, role))
		return nil
	case member:
		// The seed's NOINHERIT role: a member without the privileges until it sets the role, which
		// the collector does on every session (docs/collector.md, Privileges).
		out.println(fmt.Sprintf("%s: role %s is a NOINHERIT member of pg_monitor; the collector runs SET ROLE pg_monitor to use its privileges",
			label, role))
		return nil
	}
	return fmt.Errorf("role %q is not granted pg_monitor; run GRANT pg_monitor TO %s", role, role)
}

// checkRegistration registers a collector with the shared secret. Given an operator's credentials
// (username, password) it deregisters that collector again, so the check leaves nothing behind and
// can run any number of times.
func (e *Engine) checkRegistration(ctx context.Context, s *Step, out *lineWriter) error {
	c, err := e.apiClient(s)
	if err != nil {
		return err
	}
	var vals [5]string
	for i, f := range []string{s.Secret, s.Name, s.Hostname, s.Username, s.Password} {
		if vals[i], err = e.env.expandStep(f); err != nil {
			return err
		}
	}
	secret, name, hostname, user, password := vals[0], vals[1], vals[2], vals[3], vals[4]
	rr, err := c.Register(ctx, secret, api.RegisterRequest{Name: name, Hostname: hostname})
	if err != nil {
		return classifyHTTP(fmt.Errorf("register: %w", err))
	}
	if rr.CollectorID == "" || rr.Token == "" {
		return errors.New("register: the answer lacks collector_id or token")
	}
	out.println(fmt.Sprintf("POST %s%s/collectors/register: collector %q (%s) registered as %s; token received (%d bytes, not shown)",
		c.BaseURL(), client.APIPrefix, name, hostname, rr.CollectorID, len(rr.Token)))
	if user == "" {
		return nil
	}
	tp, err := c.Login(ctx, user, password)
	if err != nil {
		return classifyHTTP(fmt.Errorf("login as %s to deregister the check's collector: %w", user, err))
	}
	if err := c.WithToken(tp.AccessToken).DeleteCollector(ctx, rr.CollectorID); err != nil {
		return classifyHTTP(fmt.Errorf("deregister %s: %w", rr.CollectorID, err))
	}
	out.println(fmt.Sprintf("DELETE %s%s/collectors/%s: deregistered again (token revoked)", c.BaseURL(), client.APIPrefix, rr.CollectorID))
	return nil
}

// loggedIn is the step's API client logged in as its username and password.
func (e *Engine) loggedIn(ctx context.Context, s *Step) (*client.Client, api.TokenPair, string, error) {
	c, err := e.apiClient(s)
	if err != nil {
		return nil, api.TokenPair{}, "", err
	}
	user, err := e.env.expandStep(s.Username)
	if err != nil {
		return nil, api.TokenPair{}, "", err
	}
	password, err := e.env.expandStep(s.Password)
	if err != nil {
		return nil, api.TokenPair{}, "", err
	}
	tp, err := c.Login(ctx, user, password)
	if err != nil {
		return nil, api.TokenPair{}, "", classifyHTTP(fmt.Errorf("login as %s: %w", user, err))
	}
	return c.WithToken(tp.AccessToken), tp, user, nil
}

// alertsFreshness is how recent the alerts-evaluated check wants the last evaluation.
const alertsFreshness = time.Minute

func (e *Engine) checkAlertsEvaluated(ctx context.Context, s *Step, out *lineWriter) error {
	c, _, _, err := e.loggedIn(ctx, s)
	if err != nil {
		return err
	}
	ar, err := c.Alerts(ctx)
	if err != nil {
		return classifyHTTP(fmt.Errorf("alerts: %w", err))
	}
	states := map[string]int{}
	for _, a := range ar.Alerts {
		states[a.State]++
	}
	out.println(fmt.Sprintf("GET %s%s/alerts: evaluated %s, %d firing, %d pending, %d resolved", c.BaseURL(), client.APIPrefix,
		ar.EvaluatedAt.UTC().Format(time.RFC3339), states["firing"], states["pending"], states["resolved"]))
	if age := time.Since(ar.EvaluatedAt); ar.EvaluatedAt.IsZero() || age > alertsFreshness {
		return fmt.Errorf("alert rules not evaluated within the last %s: is any API server up and holding the alerting lock?", alertsFreshness)
	}
	return nil
}

func (e *Engine) checkAlertDelivery(ctx context.Context, s *Step, out *lineWriter) error {
	c, _, _, err := e.loggedIn(ctx, s)
	if err != nil {
		return err
	}
	res, err := c.TestAlertDelivery(ctx, max(s.EffectiveTimeout()-5*time.Second, 5*time.Second), time.Second)
	if res.ID == "" {
		return classifyHTTP(fmt.Errorf("alert delivery test: %w", err))
	}
	missing := 0
	for _, am := range res.Alertmanagers {
		status := "holds test alert " + res.ID
		if !am.OK {
			missing++
			status = "does not hold test alert " + res.ID + ": " + am.Error
		}
		out.println(fmt.Sprintf("%s %s", am.URL, status))
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d Alertmanagers did not get the test alert", missing, len(res.Alertmanagers))
	}
	return nil
}

func (e *Engine) checkAPIMetrics(ctx context.Context, s *Step, out *lineWriter) error {
	c, tp, user, err := e.loggedIn(ctx, s)
	if err != nil {
		return err
	}
	since := time.Now().Add(-metricsWindow)
	samples, err := c.Metrics(ctx, client.MetricsQuery{Since: since, Limit: 100})
	if err != nil {
		return classifyHTTP(fmt.Errorf("metrics: %w", err))
	}
	out.println(fmt.Sprintf("GET %s%s/metrics?since=%s: %d samples (as %s, role %s)", c.BaseURL(), client.APIPrefix,
		since.UTC().Format(time.RFC3339), len(samples), user, orDash(tp.Role)))
	if len(samples) == 0 {
		return fmt.Errorf("metrics: no samples in the last %s", metricsWindow)
	}
	last := samples[0]
	for _, m := range samples[1:] {
		if m.Timestamp.After(last.Timestamp) {
			last = m
		}
	}
	out.println(fmt.Sprintf("newest: %s = %g from collector %s at %s", last.Name, last.Value, last.CollectorID,
		last.Timestamp.UTC().Format(time.RFC3339)))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
