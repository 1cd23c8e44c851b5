package runbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// PlanStep is what a dry run says about one step: what it would do, with variables resolved and
// secrets redacted. Nothing is executed, connected to or written.
type PlanStep struct {
	Phase string
	Step  *Step
	// Would describes the action, one line each (a command step's script, a query, a request).
	Would []string
	// CannotSimulate is set when a dry run cannot tell what the step would do, and says why.
	CannotSimulate string
	// Err is set when the step could not run as configured: an unresolved variable, a loopback
	// violation, a shell syntax error, a missing smoke suite.
	Err error
}

// Plan is the dry run of a target: every step resolved against the environment, command scripts
// parsed by bash (bash -n), nothing run.
func (e *Engine) Plan(ctx context.Context, t Target) ([]PlanStep, error) {
	phase, steps, err := e.rb.Select(t)
	if err != nil {
		return nil, err
	}
	plan := make([]PlanStep, 0, len(steps))
	for _, s := range steps {
		plan = append(plan, e.planStep(ctx, phase.ID, s))
	}
	return plan, nil
}

func (e *Engine) planStep(ctx context.Context, phase string, s *Step) PlanStep {
	ps := PlanStep{Phase: phase, Step: s}
	var errs []error
	// resolve expands a field; the value is for checks, never for display (use e.env.Redact).
	resolve := func(field, v string) string {
		x, err := e.env.expandStep(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return v
		}
		return x
	}
	would := func(format string, args ...any) { ps.Would = append(ps.Would, fmt.Sprintf(format, args...)) }
	if s.Destructive {
		would("destructive: asks the operator to type %q before it runs", s.ID)
	}
	switch s.Kind {
	case KindManual:
		ps.CannotSimulate = "manual step: an operator does it and confirms"
		for _, item := range s.Checklist {
			would("[ ] %s", item)
		}
	case KindCommand:
		would("bash (set -euo pipefail; timeout %s):", s.EffectiveTimeout())
		for _, l := range strings.Split(strings.TrimRight(s.Run, "\n"), "\n") {
			would("  %s", l)
		}
		if err := e.checkScriptSyntax(ctx, s); err != nil {
			errs = append(errs, err)
		}
	case KindSQL:
		dsn := resolve("database", s.databaseRef())
		e.planLoopbackDSN(dsn, &errs)
		would("on %s (timeout %s):", e.env.Redact(dsn), s.EffectiveTimeout())
		for _, l := range strings.Split(strings.TrimRight(s.SQL, "\n"), "\n") {
			would("  %s", l)
		}
		for i, p := range s.Params {
			would("  $%d = %s", i+1, e.env.Redact(resolve("params", p)))
		}
		if x := s.Expect; x != nil {
			if x.Rows != nil {
				would("expect rows %s", x.Rows)
			}
			if x.Value != nil {
				would("expect value %s", x.Value)
			}
			if x.Equals != nil {
				would("expect rows equal %s", formatRows(x.Equals))
			}
		}
	case KindCheck:
		e.planCheck(s, resolve, would, &errs)
	case KindRolling:
		settle := defaultSettle
		if s.Settle.D() != 0 {
			settle = s.Settle.D()
		}
		servers := e.planServers(s, &errs)
		for i, srv := range servers {
			would("%s (SERVER_NAME=%s SERVER_URL=%s): bash (set -euo pipefail; timeout %s):", srv.Name, srv.Name, srv.URL, s.EffectiveTimeout())
			for _, l := range strings.Split(strings.TrimRight(s.Run, "\n"), "\n") {
				would("  %s", l)
			}
			would("  then wait for %s/api/v1/health/ready as a restarted process", srv.URL)
			if i < len(servers)-1 {
				would("  then wait %s for the load balancer", settle)
			}
		}
		if err := e.checkScriptSyntax(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	ps.Err = errors.Join(errs...)
	return ps
}

func (e *Engine) planCheck(s *Step, resolve func(field, v string) string, would func(string, ...any), errs *[]error) {
	base := ""
	if s.URL != "" {
		raw := strings.TrimRight(resolve("url", s.URL), "/")
		if e.env.LoopbackOnly && looksLikeHTTPURL(raw) {
			if err := checkLoopbackURL(raw); err != nil {
				*errs = append(*errs, fmt.Errorf("environment %s is loopback-only: %w", e.env.Name, err))
			}
		}
		base = e.env.Redact(raw)
	}
	switch s.Check {
	case CheckHTTPHealth:
		would("GET %s/api/v1/health: expect 200 and {\"status\":\"healthy\",...}", base)
	case CheckSecurityHeaders:
		want := s.Headers
		if len(want) == 0 {
			want = defaultSecurityHeaders(strings.HasPrefix(base, "https://"))
		}
		would("GET %s/api/v1/health: expect headers %s", base, strings.Join(want, "; "))
	case CheckTLSExpiry:
		days := s.MinDays
		if days == 0 {
			days = DefaultMinDays
		}
		would("TLS handshake with %s: expect a valid certificate for %d more days", base, days)
	case CheckAlertmanager:
		would("GET {each of %s}/-/ready and /api/v2/status: expect every Alertmanager ready", base)
	case CheckRollbackTrigger:
		dsn := resolve("database", s.databaseRef())
		e.planLoopbackDSN(dsn, errs)
		would("the rollback plan's six trigger conditions over the last %s, from %s (readiness) and %s: expect none tripped", triggerWindow, base, e.env.Redact(dsn))
	case CheckGrafana:
		dsn := resolve("database", s.databaseRef())
		e.planLoopbackDSN(dsn, errs)
		role := DefaultGrafanaRole
		if s.Role != "" {
			role = resolve("role", s.Role)
		}
		would("on %s as role %s: every shipped dashboard's variable and panel queries, expanded for the last hour: expect each to return rows", e.env.Redact(dsn), e.env.Redact(role))
	case CheckPostgres, CheckPgMonitor:
		dsn := resolve("database", s.databaseRef())
		e.planLoopbackDSN(dsn, errs)
		if s.Check == CheckPostgres {
			would("connect to %s", e.env.Redact(dsn))
		} else {
			role := DefaultRole
			if s.Role != "" {
				role = resolve("role", s.Role)
			}
			would("connect to %s: expect role %s to hold pg_monitor's privileges", e.env.Redact(dsn), e.env.Redact(role))
		}
	case CheckRegistration:
		resolve("secret", s.Secret)
		would("POST %s/api/v1/collectors/register as %q (%s) with X-Registration-Secret: expect 201 and a token",
			base, e.env.Redact(resolve("name", s.Name)), e.env.Redact(resolve("hostname", s.Hostname)))
	case CheckAPIMetrics:
		resolve("password", s.Password)
		would("POST %s/api/v1/auth/login as %s, then GET %s/api/v1/metrics: expect samples from the last %s",
			base, e.env.Redact(resolve("username", s.Username)), base, metricsWindow)
	case CheckAlertsEvaluated:
		resolve("password", s.Password)
		would("POST %s/api/v1/auth/login as %s, then GET %s/api/v1/alerts: expect an evaluation within the last %s",
			base, e.env.Redact(resolve("username", s.Username)), base, alertsFreshness)
	case CheckAlertDelivery:
		resolve("password", s.Password)
		would("POST %s/api/v1/auth/login as %s, then POST %s/api/v1/alerts/test: expect every Alertmanager to hold the test alert",
			base, e.env.Redact(resolve("username", s.Username)), base)
	case CheckAPIServers:
		for _, srv := range e.planServers(s, errs) {
			would("GET %s/api/v1/health/ready and /health (%s): expect ready and healthy", srv.URL, srv.Name)
		}
		if base != "" {
			would("GET %s/api/v1/health (the load balancer): expect 200 and {\"status\":\"healthy\",...}", base)
		}
	case CheckPerformance:
		window := DefaultPerfWindow
		if s.Window.D() != 0 {
			window = s.Window.D()
		}
		targets := []string{base}
		if s.Servers != "" {
			targets = nil
			for _, srv := range e.planServers(s, errs) {
				targets = append(targets, srv.URL)
			}
		}
		would("scrape %s/metrics twice, %s apart: expect p95 < %s, CPU < %.0f %%, RSS < %d MiB", strings.Join(targets, "/metrics, "), window, maxP95, 100*maxCPUFraction, maxRSSBytes>>20)
		if s.Database != "" {
			dsn := resolve("database", s.databaseRef())
			e.planLoopbackDSN(dsn, errs)
			would("on %s: every collector of the window under the same CPU and RSS targets with no failed collection or push; the plan's validation SQL under %s", e.env.Redact(dsn), maxQueryTime)
		}
	case CheckSecurity:
		resolve("password", s.Password)
		would("run the smoke suite's security checks (%s), then POST %s/api/v1/auth/login as %s and GET %s/api/v1/users: list every user with its role",
			strings.Join(SecurityChecks, ", "), base, e.env.Redact(resolve("username", s.Username)), base)
		if e.opts.Smoke == nil {
			*errs = append(*errs, errSmokeNotWired)
		}
	case CheckSmoke:
		would("run the smoke suite")
		if e.opts.Smoke == nil {
			*errs = append(*errs, errSmokeNotWired)
		}
	}
}

// planServers resolves a step's servers for a dry run, noting what is wrong instead of failing.
func (e *Engine) planServers(s *Step, errs *[]error) []Server {
	servers, err := e.servers(s)
	if err != nil {
		*errs = append(*errs, err)
	}
	return servers
}

func (e *Engine) planLoopbackDSN(dsn string, errs *[]error) {
	if !e.env.LoopbackOnly || strings.Contains(dsn, "${") {
		return
	}
	if err := checkLoopbackDSN(dsn); err != nil {
		*errs = append(*errs, fmt.Errorf("environment %s is loopback-only: %w", e.env.Name, err))
	}
}
