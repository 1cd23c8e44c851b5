package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

// injectionPayloads are classic probes: quote breaking, tautologies, stacked queries, UNION, and a NUL
// byte (PostgreSQL rejects it in text, which an unchecked handler turns into a 500).
var injectionPayloads = []string{
	`' OR '1'='1`,
	`1; DROP TABLE metrics;--`,
	`' UNION SELECT password_hash, NULL FROM users--`,
	`1)) OR 1=1 --`,
	"smoke\x00probe",
}

// metricsParam is one GET /api/v1/metrics query parameter and whether it is typed: typed ones
// (timestamps, numbers) must reject a payload with 4xx; free-text ones may also answer 2xx with no rows.
type metricsParam struct {
	name  string
	typed bool
}

var metricsParams = []metricsParam{
	{"collector_id", false},
	{"name", false},
	{"since", true},
	{"until", true},
	{"limit", true},
}

func checkSQLInjection(ctx context.Context, e *env) outcome {
	if o, ok := e.needAdmin(); !ok {
		return o
	}
	collectors, err := e.admin.Collectors(ctx)
	if err != nil {
		return fail("GET /api/v1/collectors as admin: %v", err)
	}
	// Valid values for the parameters not under test, so each probe reaches the parameter it targets.
	base := client.MetricsQuery{Name: "pg_up", Since: time.Now().Add(-time.Hour), Limit: 10}
	if len(collectors) > 0 {
		base.CollectorID = collectors[0].ID
	}
	probes := 0
	for _, p := range metricsParams {
		for _, payload := range injectionPayloads {
			q := base.Values()
			q.Set(p.name, payload)
			const path = client.APIPrefix + "/metrics"
			resp, err := e.admin.Do(ctx, client.RawRequest{Path: path, Query: q})
			if err != nil {
				return fail("GET %s?%s=%q: %v", path, p.name, payload, err)
			}
			probes++
			if o, bad := judgeProbe(fmt.Sprintf("GET %s with %s=%q", path, p.name, payload), resp, !p.typed); bad {
				return o
			}
		}
	}
	for _, tmpl := range []string{"/collectors/%s", "/config/%s"} {
		for _, payload := range injectionPayloads {
			path := client.APIPrefix + fmt.Sprintf(tmpl, url.PathEscape(payload))
			resp, err := e.admin.Do(ctx, client.RawRequest{Path: path})
			if err != nil {
				return fail("GET %s: %v", path, err)
			}
			probes++
			if o, bad := judgeProbe("GET "+path, resp, false); bad {
				return o
			}
		}
	}
	return pass("%d probes on collector_id, name, since, until, limit and path ids: all refused or empty, no 5xx", probes)
}

// judgeProbe fails a probe that crashed the server, leaked a database error, or (for typed
// parameters and ids) was accepted. allowEmpty2xx accepts a 2xx that returned no samples.
func judgeProbe(what string, resp client.RawResponse, allowEmpty2xx bool) (outcome, bool) {
	if resp.Status >= 500 {
		return fail("%s answered %d: validate the input and answer 400, never pass it to SQL unchecked", what, resp.Status), true
	}
	if name, ok := firstLeak(resp.Body, sqlLeaks); ok {
		return fail("%s leaked %s in its answer: use bind parameters and generic error messages", what, name), true
	}
	if resp.Status >= 200 && resp.Status < 300 {
		var mr api.MetricsResponse
		if allowEmpty2xx && json.Unmarshal(resp.Body, &mr) == nil && len(mr.Samples) == 0 {
			return outcome{}, false
		}
		return fail("%s was accepted (%d): reject malformed values with 400", what, resp.Status), true
	}
	return outcome{}, false
}

// leak is one pattern that must never appear in an error body.
type leak struct {
	name string
	re   *regexp.Regexp
}

var stackLeaks = []leak{
	{"a Go stack trace", regexp.MustCompile(`goroutine \d+ \[|panic: |\.go:\d+|runtime/debug`)},
	{"a stack trace", regexp.MustCompile(`Traceback \(most recent call last\)|\bat [\w$.]+\([\w$]+\.\w+:\d+\)`)},
}

var sqlLeaks = []leak{
	{"SQL text", regexp.MustCompile(`(?i)\bselect\b.{1,200}?\bfrom\b|\binsert\s+into\b|\bupdate\s+\w+\s+set\b|\bdelete\s+from\b`)},
	{"a database error", regexp.MustCompile(`(?i)SQLSTATE|syntax error at or near|\bpq: |\bpgx\b|pgconn|relation "[^"]*" does not exist|violates (unique|foreign key|not-null|check) constraint|invalid input syntax for`)},
}

var pathLeaks = []leak{
	{"a file path", regexp.MustCompile(`(?:^|[\s"'(=:])/(?:home|root|usr|var|opt|etc|tmp|srv|go|app|work|build)/[\w.\-/]+|\b[A-Za-z]:\\[\w.\\-]+`)},
}

var secretLeaks = []leak{
	// key=value or key: "value" — not prose such as "password: too short".
	{"a secret assignment", regexp.MustCompile(`(?i)\b(password|passwd|secret|secret_key|jwt_secret_key|registration_secret|api[_-]?key)\b["']?\s*(?:=|:\s*["'])\s*[^\s"',}]{4,}`)},
	{"a JWT", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)},
	{"a database URL with a password", regexp.MustCompile(`(?i)postgres(?:ql)?://[^\s:/@]+:[^\s@/]+@`)},
	{"a private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
}

func firstLeak(body []byte, sets ...[]leak) (string, bool) {
	for _, set := range sets {
		for _, l := range set {
			if l.re.Match(body) {
				return l.name, true
			}
		}
	}
	return "", false
}

// errorProbe is a request that must fail cleanly.
type errorProbe struct {
	req   client.RawRequest
	admin bool // send with the admin token
}

func errorProbes() []errorProbe {
	js := http.Header{"Content-Type": {"application/json"}}
	return []errorProbe{
		{req: client.RawRequest{Path: client.APIPrefix + "/smoke-no-such-route"}},
		{req: client.RawRequest{Path: client.APIPrefix + "/collectors"}},
		{req: client.RawRequest{Path: client.APIPrefix + "/collectors", Header: http.Header{"Authorization": {"Bearer smoke.invalid.token"}}}},
		{req: client.RawRequest{Method: http.MethodPost, Path: client.APIPrefix + "/auth/login", Header: js, Body: []byte(`{"username":`)}},
		{req: client.RawRequest{Method: http.MethodPost, Path: client.APIPrefix + "/auth/refresh", Header: js, Body: []byte(`{"refresh_token":"smoke.invalid.token"}`)}},
		{req: client.RawRequest{Path: client.APIPrefix + "/metrics", Query: url.Values{"since": {"not-a-time"}}}, admin: true},
		{req: client.RawRequest{Method: http.MethodPost, Path: client.APIPrefix + "/metrics/push", Header: js, Body: []byte(`{`)}, admin: true},
		{req: client.RawRequest{Path: client.APIPrefix + "/collectors/00000000-0000-0000-0000-000000000000"}, admin: true},
	}
}

func checkErrorLeaks(ctx context.Context, e *env) outcome {
	secrets := []string{e.cfg.AdminPassword, e.cfg.ViewerPassword, e.adminToken}
	checked := 0
	for _, p := range errorProbes() {
		c := e.anon
		if p.admin {
			if e.admin == nil {
				continue
			}
			c = e.admin
		}
		method := p.req.Method
		if method == "" {
			method = http.MethodGet
		}
		what := method + " " + p.req.Path
		resp, err := c.Do(ctx, p.req)
		if err != nil {
			return fail("%s: %v", what, err)
		}
		checked++
		if resp.Status >= 500 {
			return fail("%s answered %d: bad input must get a 4xx, see the API logs for the cause", what, resp.Status)
		}
		if resp.Status < 400 {
			return fail("%s answered %d, want an error: the API accepts invalid input", what, resp.Status)
		}
		if name, ok := firstLeak(resp.Body, stackLeaks, sqlLeaks, pathLeaks, secretLeaks); ok {
			return fail("%s (%d) leaks %s in its body: answer a generic {\"error\":{\"code\",\"message\"}} and log details server-side", what, resp.Status, name)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(string(resp.Body), s) {
				return fail("%s (%d) echoes a credential in its body: never include request secrets in errors", what, resp.Status)
			}
		}
		var env api.Error
		if err := json.Unmarshal(resp.Body, &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
			return fail("%s (%d) body is not {\"error\":{\"code\",\"message\"}}: answer every error with the JSON envelope", what, resp.Status)
		}
	}
	note := ""
	if e.admin == nil {
		note = " (authenticated probes skipped: no admin credentials)"
	}
	return pass("%d error answers are clean JSON envelopes%s", checked, note)
}
