package smoke

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

const healthPath = client.APIPrefix + "/health"

func checkHealth(ctx context.Context, e *env) outcome {
	resp, err := e.anon.Do(ctx, client.RawRequest{Path: healthPath})
	if err != nil {
		return fail("GET %s: %v", healthPath, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp.Body, &fields); err != nil {
		return fail("GET %s answered %d with a body that is not a JSON object: the API must answer {\"status\",\"uptime\",\"version\",\"checks\"}", healthPath, resp.Status)
	}
	var h api.Health
	shape := []struct {
		key string
		dst any
	}{{"status", &h.Status}, {"uptime", &h.Uptime}, {"version", &h.Version}, {"checks", &h.Checks}}
	for _, f := range shape {
		raw, ok := fields[f.key]
		if !ok {
			return fail("health answer lacks %q: the API must answer {\"status\",\"uptime\",\"version\",\"checks\"}", f.key)
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return fail("health field %q has the wrong type (%s): fix the API's health handler", f.key, raw)
		}
	}
	switch h.Status {
	case "healthy", "degraded", "unhealthy":
	default:
		return fail("health status %q is not healthy|degraded|unhealthy: fix the API's health handler", h.Status)
	}
	if h.Uptime < 0 || h.Version == "" {
		return fail("health reports uptime %d and version %q: uptime must be >= 0 and the version set at build time", h.Uptime, h.Version)
	}
	if _, ok := h.Checks["database"]; !ok {
		return fail("health checks lack \"database\": the API must report its database dependency")
	}
	if resp.Status != http.StatusOK || h.Status != "healthy" {
		return fail("health is %s (HTTP %d, %s): fix the failing dependency, see the API logs", h.Status, resp.Status, formatChecks(h.Checks))
	}
	return pass("healthy, version %s, uptime %ds, %s", h.Version, h.Uptime, formatChecks(h.Checks))
}

func formatChecks(checks map[string]string) string {
	keys := make([]string, 0, len(checks))
	for k := range checks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + checks[k]
	}
	return strings.Join(parts, " ")
}

// checkSecurityHeaders looks at a success and an error answer: middleware that only decorates
// handled routes is a common gap.
func checkSecurityHeaders(ctx context.Context, e *env) outcome {
	paths := []string{healthPath, client.APIPrefix + "/smoke-no-such-route"}
	var problems []string
	for _, p := range paths {
		resp, err := e.anon.Do(ctx, client.RawRequest{Path: p})
		if err != nil {
			return fail("GET %s: %v", p, err)
		}
		h := resp.Header
		if v := h.Get("X-Frame-Options"); !strings.EqualFold(v, "DENY") {
			problems = append(problems, fmt.Sprintf("X-Frame-Options is %q, want DENY", v))
		}
		if v := h.Get("X-Content-Type-Options"); !strings.EqualFold(v, "nosniff") {
			problems = append(problems, fmt.Sprintf("X-Content-Type-Options is %q, want nosniff", v))
		}
		if h.Get("Content-Security-Policy") == "" {
			problems = append(problems, "Content-Security-Policy missing")
		}
		if e.https {
			if age, ok := hstsMaxAge(h.Get("Strict-Transport-Security")); !ok || age <= 0 {
				problems = append(problems, fmt.Sprintf("Strict-Transport-Security is %q, want max-age > 0", h.Get("Strict-Transport-Security")))
			}
		}
		if len(problems) > 0 {
			return fail("GET %s (HTTP %d): %s: set them in the API's security-headers middleware or the reverse proxy", p, resp.Status, strings.Join(problems, "; "))
		}
	}
	hsts := "HSTS not required over plain HTTP"
	if e.https {
		hsts = "HSTS set"
	}
	return pass("X-Frame-Options, nosniff and CSP on success and error answers; %s", hsts)
}

func hstsMaxAge(v string) (int64, bool) {
	for _, d := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "max-age") {
			n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// checkTLS dials the server itself so it can report an expired or untrusted certificate precisely,
// even when the other checks run with InsecureSkipVerify.
func checkTLS(ctx context.Context, e *env) outcome {
	if !e.https {
		return skip("plain HTTP: no certificate to check (use an https:// API URL to check TLS)")
	}
	u, err := url.Parse(e.anon.BaseURL())
	if err != nil {
		return fail("parse API URL: %v", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	cfg := e.anon.TLSConfig()
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true //nolint:gosec // verified below, so the failure can be named
	cfg.ServerName = host
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fail("TLS handshake with %s: %v: check the server's TLS_CERT_FILE/TLS_KEY_FILE", u.Host, err)
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	if len(state.PeerCertificates) == 0 {
		return fail("%s presented no certificate: configure TLS_CERT_FILE", u.Host)
	}
	leaf := state.PeerCertificates[0]
	now := time.Now()
	for _, c := range state.PeerCertificates {
		if now.After(c.NotAfter) {
			return fail("certificate %q expired on %s: renew it (the API reloads its certificate files by itself)", c.Subject.CommonName, c.NotAfter.UTC().Format(time.DateOnly))
		}
		if now.Before(c.NotBefore) {
			return fail("certificate %q is not valid before %s: check the server clock or reissue it", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host, CurrentTime: now}); err != nil {
		return fail("certificate for %s does not verify: %v: serve a certificate for this name from a trusted CA, or pass its CA with --ca-file/PGACTL_CA_FILE", host, err)
	}
	soonest := leaf
	for _, c := range state.PeerCertificates[1:] {
		if c.NotAfter.Before(soonest.NotAfter) {
			soonest = c
		}
	}
	left := soonest.NotAfter.Sub(now)
	if left < e.cfg.CertMinValidity {
		return fail("certificate %q expires in %s (%s), within the required %s: renew it", soonest.Subject.CommonName, days(left), soonest.NotAfter.UTC().Format(time.DateOnly), days(e.cfg.CertMinValidity))
	}
	// TLS 1.2 is the floor: a server that still completes a TLS 1.1 handshake fails the check.
	old := e.anon.TLSConfig()
	old.InsecureSkipVerify = true //nolint:gosec // only the protocol version is probed
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := (&tls.Dialer{Config: old}).DialContext(ctx, "tcp", net.JoinHostPort(host, port)); err == nil {
		c.Close()
		return fail("%s accepts TLS 1.1: allow TLS 1.2 and later only", u.Host)
	}
	return pass("certificate for %s valid until %s (%s left), %s", host, soonest.NotAfter.UTC().Format(time.DateOnly), days(left), tls.VersionName(state.Version))
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// corsDeniedOrigin is an origin no deployment allows (.invalid is reserved, RFC 2606).
const corsDeniedOrigin = "https://smoke-probe.invalid"

func checkCORS(ctx context.Context, e *env) outcome {
	if e.cfg.CORSOrigin == "" {
		return skip("no allowed origin to test: set PGACTL_CORS_ORIGIN (or --cors-origin) to one of the API's CORS_ALLOWED_ORIGINS")
	}
	const path = client.APIPrefix + "/collectors"
	preflight := func(origin string) (client.RawResponse, error) {
		return e.anon.Do(ctx, client.RawRequest{Method: http.MethodOptions, Path: path, Header: http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {http.MethodGet},
			"Access-Control-Request-Headers": {"authorization"},
		}})
	}
	ok, err := preflight(e.cfg.CORSOrigin)
	if err != nil {
		return fail("OPTIONS %s: %v", path, err)
	}
	if ok.Status < 200 || ok.Status > 299 {
		return fail("preflight from %s answered %d: add it to CORS_ALLOWED_ORIGINS and answer OPTIONS with 204", e.cfg.CORSOrigin, ok.Status)
	}
	if got := ok.Header.Get("Access-Control-Allow-Origin"); got != e.cfg.CORSOrigin {
		return fail("preflight from %s got Access-Control-Allow-Origin %q, want the origin itself: add it to CORS_ALLOWED_ORIGINS", e.cfg.CORSOrigin, got)
	}
	if !headerListHas(ok.Header.Get("Access-Control-Allow-Methods"), http.MethodGet) {
		return fail("preflight from %s got Access-Control-Allow-Methods %q, want GET in it: fix the API's CORS middleware", e.cfg.CORSOrigin, ok.Header.Get("Access-Control-Allow-Methods"))
	}
	if !headerListHas(ok.Header.Get("Access-Control-Allow-Headers"), "authorization") {
		return fail("preflight from %s got Access-Control-Allow-Headers %q, want Authorization in it: fix the API's CORS middleware", e.cfg.CORSOrigin, ok.Header.Get("Access-Control-Allow-Headers"))
	}
	bad, err := preflight(corsDeniedOrigin)
	if err != nil {
		return fail("OPTIONS %s: %v", path, err)
	}
	if got := bad.Header.Get("Access-Control-Allow-Origin"); got != "" {
		return fail("preflight from unlisted origin %s got Access-Control-Allow-Origin %q: only echo origins listed in CORS_ALLOWED_ORIGINS, never *", corsDeniedOrigin, got)
	}
	return pass("%s allowed (GET, Authorization), %s refused", e.cfg.CORSOrigin, corsDeniedOrigin)
}

func headerListHas(list, want string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(v), want) || strings.TrimSpace(v) == "*" {
			return true
		}
	}
	return false
}

// checkRateLimit sends anonymous health requests until the first 429 and checks its Retry-After.
func checkRateLimit(ctx context.Context, e *env) outcome {
	max := e.cfg.RateLimitRequests
	probe := e.anon.WithRateLimitRetries(0) // this check is looking for the 429
	for i := 1; i <= max; i++ {
		resp, err := probe.Do(ctx, client.RawRequest{Path: healthPath})
		if err != nil {
			return fail("request %d to %s: %v", i, healthPath, err)
		}
		if resp.Status != http.StatusTooManyRequests {
			if resp.Status >= 500 && resp.Status != http.StatusServiceUnavailable {
				return fail("request %d to %s answered %d before any 429: the server must shed load with 429, not errors", i, healthPath, resp.Status)
			}
			continue
		}
		ra := resp.Header.Get("Retry-After")
		if client.ParseRetryAfter(ra, time.Now()) <= 0 {
			return fail("429 after %d requests but Retry-After is %q: send Retry-After with the seconds until the bucket refills", i, ra)
		}
		limit := resp.Header.Get("X-RateLimit-Limit")
		if limit == "" {
			limit = "unknown"
		}
		return pass("429 after %d requests, Retry-After %ss, limit %s", i, ra, limit)
	}
	return fail("no 429 after %d requests to %s: rate limiting is off or above %d/min: set RATE_LIMIT_PER_MINUTE (default 100)", max, healthPath, max)
}
