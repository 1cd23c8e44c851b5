package runbook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed plan's phases and steps, as titled in DEPLOYMENT_PLAN_v3.2.0.md.
var seedSteps = map[string][]string{
	"pre-deployment": {
		"Team Review & Approvals", "Environment Preparation", "Secrets Management", "Database Setup",
		"API Server Preparation", "Collector Preparation", "Monitoring & Alerting", "Grafana Setup",
		"Security Validation", "Backup & Disaster Recovery",
	},
	"staging": {
		"Step 1: Deploy API Server", "Step 2: Test API Health", "Step 3: Deploy Collector",
		"Step 4: Test Collector Registration", "Step 5: Test Metrics Push", "Step 6: Import Grafana Dashboards",
		"Step 7: Run Smoke Tests", "Step 8: Performance Validation", "Step 9: Security Testing",
	},
	"production": {
		"Step 1: Pre-Deployment Validation", "Step 2: Database Migration", "Step 3: API Server Deployment",
		"Step 4: Health Check", "Step 5: Collector Registration & Deployment", "Step 6: Grafana Deployment",
		"Step 7: Monitoring Activation", "Step 8: Production Validation",
	},
	"monitoring": {
		"Phase 4A: First 6 Hours", "Phase 4B: First 24 Hours", "Phase 4C: First 48 Hours", "Phase 4D: End of Week",
	},
	"rollback": {
		"STOP: Pause all collectors", "ASSESS: Determine impact", "NOTIFY: Inform stakeholders",
		"BACKUP: Create snapshot", "RESTORE: From pre-deployment backup", "VERIFY: System operational",
		"COMMUNICATE: Team status", "ANALYZE: Post-incident review",
	},
}

// Every checklist item of the seed's pre-deployment checklist and phase checklists.
var seedChecklist = []string{
	"Security team reviews SECURITY.md", "Operations team reviews PROJECT_STATUS_SUMMARY.md",
	"Database team reviews schema migrations", "Grafana team reviews dashboard configs", "Leadership approval for production",
	"PostgreSQL 16.12+ available with SSL", "API servers configured (2+ for HA)", "Collector servers identified",
	"Load balancer/reverse proxy configured", "TLS certificates obtained", "Firewall rules configured", "Network connectivity verified",
	"Generate JWT_SECRET_KEY (32+ bytes)", "Generate REGISTRATION_SECRET (32+ bytes)", "Store in vault/secrets manager",
	"Database password configured", "Backup encryption key stored",
	"PostgreSQL 16.12+ running with SSL", "pganalytics role created", "Database backup configured", "WAL archiving enabled", "Query logging enabled",
	"Go 1.21+ installed", "libpq available", "Binary compiled for production", "config.toml prepared",
	"Environment variables configured", "Log directories created",
	"C++ compiler (g++7+ or clang5+)", "libpq development library", "Collector binary compiled", "collector.toml prepared",
	"[pg_replication] section enabled", "PostgreSQL connection tested",
	"Prometheus/metrics backend ready", "Log aggregation service ready", "Alert manager configured", "Alert rules created",
	"Failed auth attempts > 5/min", "Rate limit 429 > 100/min", "Collection failures > 1%", "DB connection errors > 5/min",
	"API response time p95 > 1000ms", "Buffer utilization > 70%", "Slack/PagerDuty/email configured", "On-call rotation established",
	"Grafana 7.0+ available", "PostgreSQL datasource configured", "Dashboard provisioning directory ready", "9 dashboards copied",
	"Dashboard UIDs verified", "Alert notification channels configured",
	"TLS certificate valid (not expired)", "Security headers in reverse proxy", "CORS configuration reviewed",
	"SQL parameterization validated", "Input validation verified", "Rate limiting thresholds set", "Role assignments reviewed",
	"Backup encryption enabled",
	"Full database backup performed", "Backup stored off-site", "Backup restoration tested (dry-run)", "RTO/RPO targets defined",
	"Disaster recovery playbook reviewed", "Team trained on recovery",
	// Phase 2
	"Log into Grafana UI", "Import dashboards from `grafana/dashboards/`", "Verify 9 dashboards loaded", "Check each for data",
	"Configure alert channels", "Monitor CPU/memory/disk", "Run baseline load test (100 queries/cycle)",
	"Verify <10% CPU, <200MB memory", "Check database query performance", "Review log files",
	"Test authentication (valid/invalid)", "Test SQL injection attempts", "Test CORS preflight", "Test rate limiting",
	"Verify no sensitive data in errors", "Check password hashing in DB",
	// Phase 3
	"All pre-deployment checklist items complete", "Backup completed successfully", "Rollback plan documented",
	"Incident response team ready", "Final security review", "Repeat above steps", "Configure load balancer routing",
	"Test failover", "Import 9 dashboards", "Verify PostgreSQL datasource connections", "Wait 2+ collection cycles for data",
	"Configure alert notification channels", "Test alert notifications", "Enable Prometheus scraping", "Enable log aggregation",
	"Activate alert rules", "Test alert delivery", "Verify dashboards", "All collectors registered",
	"Metrics flowing (>100 records/min)", "Dashboards showing data", "API response times <500ms p95", "CPU/memory <10%/<200MB",
	"TLS/HTTPS working", "Rate limiting active", "Minimal error logs",
	// Phase 4
	"Check API health endpoint", "Count metrics in database", "Review error logs", "Monitor system resources (CPU, memory, disk)",
	"Verify alerts are firing", "CPU usage (should be <10%)", "Memory usage (should be <200MB)", "API response times (p50, p95, p99)",
	"Database query times", "Collector success rate (100%)", "Error rates", "Compare with load test results",
	"Check metrics in dashboards", "Monitor for memory leaks", "Check database growth (should be linear)", "Verify backups completing",
	"Test incident response", "Team meeting", "Document issues encountered", "Update runbooks",
	"Capture baseline metrics for alerting", "Plan Phase 2", "Schedule next deployment",
	// Rollback trigger conditions
	"API service crashes repeatedly", "Metrics data loss detected", "Security breach discovered", ">10% failed authentication",
	"DB connection errors >5/min", "Collectors unable to push metrics",
}

// The seed's SQL, which must run as written (whitespace aside).
var seedSQL = []string{
	"SELECT DISTINCT collector_id, COUNT(*) as metrics FROM metrics WHERE timestamp > now() - interval '10 minutes' GROUP BY collector_id",
	"SELECT DATE_TRUNC('minute', timestamp) as minute, COUNT(*) as metrics FROM metrics WHERE timestamp > now() - interval '1 hour' GROUP BY minute ORDER BY minute DESC",
	"CREATE ROLE pganalytics WITH LOGIN NOINHERIT;",
	"GRANT pg_monitor TO pganalytics;",
	"WHERE timestamp > now() - interval '5 minutes'",
}

func TestDefaultRunbookCoversSeed(t *testing.T) {
	rb, err := Default()
	if err != nil {
		t.Fatalf("shipped runbook: %v", err)
	}
	wantPhases := []string{"pre-deployment", "staging", "production", "monitoring", "rollback"}
	if got := rb.phaseIDs(); strings.Join(got, ",") != strings.Join(wantPhases, ",") {
		t.Fatalf("phases = %v, want %v", got, wantPhases)
	}
	var text strings.Builder // everything an operator reads
	var sqlText strings.Builder
	for _, p := range rb.Phases {
		titles := map[string]bool{}
		for _, s := range p.Steps {
			titles[s.Title] = true
		}
		t.Run(p.ID, func(t *testing.T) {
			for _, want := range seedSteps[p.ID] {
				if !titles[want] {
					t.Errorf("seed step %q missing", want)
				}
			}
			// A sub-step ("Step 2: Test API Health — security headers") belongs to a seed step.
			for title := range titles {
				if head, _, ok := strings.Cut(title, " — "); ok && !titles[head] && !contains(seedChecklist, head) {
					t.Errorf("step %q belongs to no seed step", title)
				}
			}
		})
		text.WriteString(p.Description + "\n")
		for _, s := range p.Steps {
			text.WriteString(s.Title + "\n" + s.Description + "\n" + strings.Join(s.Checklist, "\n") + "\n")
			sqlText.WriteString(s.SQL + "\n")
		}
	}
	lower := strings.ToLower(text.String())
	for _, item := range seedChecklist {
		if !strings.Contains(lower, strings.ToLower(item)) {
			t.Errorf("seed checklist item %q missing", item)
		}
	}
	flat := strings.Join(strings.Fields(sqlText.String()), " ")
	for _, q := range seedSQL {
		if !strings.Contains(flat, q) {
			t.Errorf("seed SQL %q missing", q)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestDefaultRunbookAutomatesWhatItCan(t *testing.T) {
	rb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Check{
		"staging/health": CheckHTTPHealth, "staging/headers": CheckSecurityHeaders, "staging/registration": CheckRegistration,
		"staging/metrics-api": CheckAPIMetrics, "staging/smoke": CheckSmoke, "production/health": CheckHTTPHealth,
		"pre-deployment/tls-certificate": CheckTLSExpiry, "pre-deployment/pg-monitor": CheckPgMonitor,
	}
	for ref, check := range want {
		tgt, _ := ParseTarget(ref)
		_, steps, err := rb.Select(tgt)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if steps[0].Kind != KindCheck || steps[0].Check != check {
			t.Errorf("%s is %s %s, want check %s", ref, steps[0].Kind, steps[0].Check, check)
		}
	}
	for _, ref := range []string{"production/migrate", "rollback/restore"} {
		tgt, _ := ParseTarget(ref)
		if _, steps, _ := rb.Select(tgt); !steps[0].Destructive {
			t.Errorf("%s is not destructive", ref)
		}
	}
	for _, ref := range []string{"pre-deployment/backup", "pre-deployment/restore-dry-run", "production/backup", "rollback/snapshot"} {
		tgt, _ := ParseTarget(ref)
		if _, steps, _ := rb.Select(tgt); !strings.Contains(steps[0].Run, "pg_dump") && !strings.Contains(steps[0].Run, "pg_restore") {
			t.Errorf("%s runs neither pg_dump nor pg_restore", ref)
		}
	}
}

func TestShippedEnvironmentsDefineWhatTheRunbookUses(t *testing.T) {
	rb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var used []string // ${NAME} of check and sql fields
	for _, p := range rb.Phases {
		for _, s := range p.Steps {
			for _, f := range []string{s.URL, s.databaseRef(), s.Secret, s.Name, s.Hostname, s.Username, s.Password} {
				used = append(used, refsIn(f)...)
			}
		}
	}
	stateDir := t.TempDir()
	writeDemoEnv(t, stateDir, "http://127.0.0.1:8080")
	for _, name := range EnvironmentNames() {
		t.Run(name, func(t *testing.T) {
			data, _ := EnvironmentTOML(name)
			var f envFile
			if err := decodeStrict(name, data, &f); err != nil {
				t.Fatal(err)
			}
			for _, v := range f.Vars { // give every ${env:NAME} the file uses a value
				for _, ref := range refsIn(v) {
					if key, ok := strings.CutPrefix(ref, "env:"); ok {
						t.Setenv(key, "value-of-"+key)
					}
				}
			}
			env, err := LoadEnvironment(name, stateDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range used {
				if _, err := env.Lookup(v); err != nil {
					t.Errorf("variable %s: %v", v, err)
				}
			}
			for _, c := range []string{"deploy_api", "start_api", "enable_api", "api_status", "api_logs",
				"deploy_collector", "start_collector", "enable_collector", "stop_collector"} {
				if _, ok := env.Commands[c]; !ok {
					t.Errorf("command %s not defined", c)
				}
			}
		})
	}
}

// writeDemoEnv writes what `pgactl demo` writes to STATE/demo/demo.env (internal/demo).
func writeDemoEnv(t *testing.T, stateDir, apiURL string) string {
	t.Helper()
	dir := filepath.Join(stateDir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "demo.env", `# pgactl demo environment
BACKUP_DIR=`+dir+`/backups
BIN_DIR=/opt/pganalytics/bin
COLLECTOR_CONFIG=`+dir+`/collector.toml
DEMO_DIR=`+dir+`
PGACTL_API_URL=`+apiURL+`
PGACTL_CA_FILE=
PGACTL_API_SERVERS=api=`+apiURL+`
ALERTMANAGER_URL=
PGACTL_CORS_ORIGIN=http://localhost:3000
PGACTL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/pganalytics?sslmode=disable
PGACTL_PASSWORD=demo-admin-pw-123
PGACTL_USERNAME=admin
PGACTL_VIEWER_PASSWORD=demo-viewer-pw-456
PGACTL_VIEWER_USERNAME=viewer
PRIMARY_URL=postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable
REGISTRATION_SECRET=registration-secret-registration-secret
STANDBY_URL=postgres://postgres@127.0.0.1:5434/postgres?sslmode=disable
`)
}

func TestParseErrorsCarryLines(t *testing.T) {
	const head = "title = \"t\"\n[[phase]]\nid = \"p\"\ntitle = \"P\"\n"
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string
	}{
		{"syntax", "title = \"t\"\n[[phase]\nid = \"p\"\n", 2, ""},
		{"unterminated string", head + "[[phase.step]]\nid = \"s\n", 6, ""},
		{"unknown key", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"manual\"\nrunn = \"x\"\n", 9, "unknown key"},
		{"unknown kind", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"shell\"\n", 8, "unknown step kind"},
		{"unknown check", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \"helth\"\n", 9, "unknown check"},
		{"bad duration", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\nrun = \"true\"\ntimeout = \"5 minutes\"\n", 10, "invalid duration"},
		{"bare integer duration", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\nrun = \"true\"\ntimeout = 30\n", 10, "quoted string"},
		{"bad comparison", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"sql\"\nsql = \"SELECT 1\"\nexpect = { rows = \"more than 1\" }\n", 10, "invalid comparison"},
		{"missing run", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\n", 5, `missing "run"`},
		{"field of another kind", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"command\"\nrun = \"true\"\nsql = \"SELECT 1\"\n", 10, `"sql" does not apply`},
		{"duplicate step id", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"manual\"\n[[phase.step]]\nid = \"s\"\ntitle = \"T\"\nkind = \"manual\"\n", 10, "duplicate step id"},
		{"bad id", head + "[[phase.step]]\nid = \"Step One\"\ntitle = \"S\"\nkind = \"manual\"\n", 6, "must be lowercase"},
		{"literal secret", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \"registration\"\nurl = \"${API}\"\nname = \"n\"\nhostname = \"h\"\nsecret = \"hunter2\"\n", 13, "single ${NAME} reference"},
		{"destructive manual", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"manual\"\ndestructive = true\n", 9, `"destructive" does not apply`},
		{"step references env directly", head + "[[phase.step]]\nid = \"s\"\ntitle = \"S\"\nkind = \"check\"\ncheck = \"http-health\"\nurl = \"${env:API}\"\n", 10, "only reference environment variables"},
		{"second phase step", head + "[[phase.step]]\nid = \"a\"\ntitle = \"A\"\nkind = \"manual\"\n[[phase]]\nid = \"q\"\ntitle = \"Q\"\n[[phase.step]]\nid = \"b\"\ntitle = \"B\"\nkind = \"command\"\n", 12, `step "b": missing "run"`},
		{"no phases", "title = \"t\"\n", 0, "no [[phase]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("parsed without error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a ParseError", err, err)
			}
			if pe.Line != tt.wantLine {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if tt.wantLine > 0 && !strings.HasPrefix(err.Error(), "bad.toml:") {
				t.Errorf("error %q does not start with file:line", err)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		ok   bool
	}{
		{"staging", Target{Phase: "staging"}, true},
		{"staging/health", Target{Phase: "staging", Step: "health"}, true},
		{"staging/", Target{}, false},
		{"/health", Target{}, false},
		{"Staging", Target{}, false},
		{"a/b/c", Target{}, false},
		{"", Target{}, false},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
