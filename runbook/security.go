package runbook

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/smoke"
)

// SecurityChecks are the smoke checks the plan's Step 9 lists: authentication, SQL injection,
// CORS, rate limiting, errors without sensitive data, password hashes in the database, plus the
// transport (TLS, headers), RBAC, token rotation and the registration secret.
var SecurityChecks = []string{
	smoke.CheckSecurityHeaders, smoke.CheckTLS, smoke.CheckLogin, smoke.CheckRBAC, smoke.CheckRefreshRotation,
	smoke.CheckCORS, smoke.CheckSQLInjection, smoke.CheckErrorLeaks, smoke.CheckRegistrationSecret,
	smoke.CheckSQLPasswordHashes, smoke.CheckRateLimit,
}

// knownRoles are the API's roles; a user holding anything else is a finding.
var knownRoles = map[string]bool{api.RoleAdmin: true, api.RoleOperator: true, api.RoleViewer: true}

// checkSecurity runs the smoke suite's security checks, then lists every API user with its role,
// for the person signing the step off; no admin, or a role the API does not know, fails it.
func (e *Engine) checkSecurity(ctx context.Context, s *Step, out *lineWriter) error {
	if e.opts.Smoke == nil {
		return errSmokeNotWired
	}
	failed, err := e.opts.Smoke.Run(ctx, out, SecurityChecks)
	if err != nil {
		return classifyHTTP(fmt.Errorf("security checks: %w", err))
	}
	c, _, _, err := e.loggedIn(ctx, s)
	if err != nil {
		return err
	}
	users, err := c.Users(ctx)
	if err != nil {
		return classifyHTTP(fmt.Errorf("list users: %w", err))
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	byRole := map[string]int{}
	var unknown []string
	out.println(fmt.Sprintf("role review: %d users", len(users)))
	for _, u := range users {
		out.println(fmt.Sprintf("  %-24s %s", u.Username, u.Role))
		byRole[u.Role]++
		if !knownRoles[u.Role] {
			unknown = append(unknown, u.Username+" ("+u.Role+")")
		}
	}
	var problems []string
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("%d security checks failed", failed))
	}
	if byRole[api.RoleAdmin] == 0 {
		problems = append(problems, "no admin user")
	}
	if len(unknown) > 0 {
		problems = append(problems, "users with a role the API does not know: "+strings.Join(unknown, ", "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("security: %s", strings.Join(problems, "; "))
	}
	return nil
}
