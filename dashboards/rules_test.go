package dashboards_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// prometheusDir holds the alert rules, their unit tests and the example scrape configuration.
var prometheusDir = filepath.Join("..", "deploy", "prometheus")

// TestPrometheusRules validates the alert rules and runs their unit tests with promtool.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: deploy/prometheus is NOT checked; install it (Debian: apt-get install prometheus)")
	}
	tests := []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", "rules.yml"}},
		{"test rules", []string{"test", "rules", "rules_test.yml"}},
		{"check config", []string{"check", "config", "prometheus.yml"}},
		{"check replication rules", []string{"check", "rules", "replication_rules.yml"}},
		{"test replication rules", []string{"test", "rules", "replication_rules_test.yml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), promtool, tc.args...)
			cmd.Dir = prometheusDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("promtool %v: %v\n%s", tc.args, err, out)
			}
		})
	}
}

// serverMetric finds the API's metric names in rules.yml.
var serverMetric = regexp.MustCompile(`\bpganalytics_[a-z0-9_]+\b`)

// TestRulesUseServerMetrics checks that every pganalytics_* metric the rules query is one the API
// server registers (server/*.go declares each name as a string literal): a rule on a renamed metric
// would never fire, and promtool cannot tell.
func TestRulesUseServerMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(prometheusDir, "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := filepath.Glob(filepath.Join("..", "server", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var server strings.Builder
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		server.Write(b)
	}
	var exprs strings.Builder
	for _, line := range strings.Split(string(rules), "\n") {
		if trimmed := strings.TrimSpace(line); !strings.HasPrefix(trimmed, "#") && !strings.Contains(line, "summary:") {
			exprs.WriteString(line + "\n")
		}
	}
	seen := map[string]bool{}
	for _, name := range serverMetric.FindAllString(exprs.String(), -1) {
		// A histogram's series carry a suffix its registered name lacks.
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(base, "_seconds") {
				name = base
			}
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		if !strings.Contains(server.String(), `"`+name+`"`) {
			t.Errorf("rules.yml uses %s, which the API server (server/*.go) does not register", name)
		}
	}
	if len(seen) == 0 {
		t.Fatal("found no pganalytics_* metric in rules.yml")
	}
}

// collectorMetric finds the collector's metric names in replication_rules.yml.
var collectorMetric = regexp.MustCompile(`\bpg_[a-z0-9_]+\b`)

// TestReplicationRulesUseCollectorMetrics checks that every pg_* metric the replication rules query
// is one the collector pushes (collector/pgmetrics declares each name as a string literal).
func TestReplicationRulesUseCollectorMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(prometheusDir, "replication_rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := filepath.Glob(filepath.Join("..", "collector", "pgmetrics", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var collector strings.Builder
	for _, f := range sources {
		if b, err := os.ReadFile(f); err == nil && !strings.HasSuffix(f, "_test.go") {
			collector.Write(b)
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(rules), "\n") {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "#") || strings.Contains(line, "summary:") {
			continue
		}
		for _, name := range collectorMetric.FindAllString(line, -1) {
			if !seen[name] && !strings.Contains(collector.String(), `"`+name+`"`) {
				t.Errorf("replication_rules.yml uses %s, which the collector does not push", name)
			}
			seen[name] = true
		}
	}
	if len(seen) < 8 {
		t.Fatalf("found only %d pg_* metrics in replication_rules.yml", len(seen))
	}
}
