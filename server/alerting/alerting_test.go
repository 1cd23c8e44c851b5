package alerting

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/deploy"
)

func TestShippedRulesParse(t *testing.T) {
	rs, err := Parse("deploy/alerts.toml", deploy.AlertRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FailedAuthHigh", "RateLimitedHigh", "CollectionFailuresHigh", "DBErrorsHigh",
		"APILatencyP95High", "CollectorBufferHigh", "ReplicationLagHigh", "StandbyDisconnected", "ReplicationSlotWALAtRisk"} {
		if !slices.ContainsFunc(rs.Rules, func(r Rule) bool { return r.Name == want }) {
			t.Errorf("shipped rules lack %s", want)
		}
	}
	for _, r := range rs.Rules {
		if r.RunbookURL != "docs/alerts/"+r.Name+".md" {
			t.Errorf("%s: runbook_url %q", r.Name, r.RunbookURL)
		}
		if _, err := os.Stat(filepath.Join("..", "..", r.RunbookURL)); err != nil {
			t.Errorf("%s: its runbook page: %v", r.Name, err)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	const ok = "[[rule]]\nname = \"LagHigh\"\nquantity = \"replay_lag_seconds\"\nwarning = 30\nsummary = \"x\"\n"
	cases := []struct {
		name, file, want string
	}{
		{"unknown key", ok + "sevrity = \"x\"\n", `alerts.toml:6:1: unknown key "rule.sevrity"`},
		{"bare duration", ok + "for = 30\n", "alerts.toml:6:"},
		{"bad duration", ok + "for = \"soon\"\n", `invalid duration "soon"`},
		{"unknown quantity", strings.Replace(ok, "replay_lag_seconds", "lag", 1), `alerts.toml:1: rule "LagHigh": unknown quantity "lag"`},
		{"finer scope than observed", ok + "scope = \"slot\"\n", `scope "slot": replay_lag_seconds is observed per standby`},
		{"no threshold", strings.Replace(ok, "warning = 30\n", "", 1), "needs an info, a warning or a critical threshold"},
		{"critical before warning", ok + "critical = 10\n", "critical threshold must be beyond"},
		{"bad template", strings.Replace(ok, `"x"`, `"{{.Nope"`, 1), "summary:"},
		{"bad override regexp", ok + "[[rule.override]]\nmatch = { application_name = \"(\" }\n", "override 1: match application_name"},
		{"reserved label", ok + "labels = { severity = \"page\" }\n", `label "severity"`},
		{"twice", ok + "\n" + ok, `alerts.toml:7: rule "LagHigh": the name is used twice`},
		{"empty", "", "no [[rule]]"},
		{"bad name", strings.Replace(ok, "LagHigh", "lag high", 1), "name must be"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("alerts.toml", []byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(deploy.AlertRules)
	f.Add([]byte("[[rule]]\nname = \"A\"\nquantity = \"api_p95_ms\"\nwarning = 1\nsummary = \"{{.Value}}\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("f.toml", data)
		if err != nil {
			return
		}
		// Whatever parses evaluates without a panic.
		Evaluate(rs, []Observation{{Quantity: "api_p95_ms", Value: 2}, {Quantity: "replay_lag_seconds", Value: 1e9,
			Labels: map[string]string{"cluster": "1", "application_name": "s"}}}, nil, time.Now())
	})
}

// TestEvaluateLifecycle walks one standby's lag through pending, firing (warning, then critical
// too), keep-firing, resolved and forgotten, with an override giving a reporting standby more room.
func TestEvaluateLifecycle(t *testing.T) {
	rs, err := Parse("r.toml", []byte(`
[[rule]]
name = "LagHigh"
quantity = "replay_lag_seconds"
warning = 30
critical = 300
for = "1m"
keep_firing_for = "30s"
labels = { team = "dba" }
summary = "{{.Labels.application_name}} {{.Severity}} {{.Value}} > {{.Threshold}}"
runbook_url = "docs/alerts/LagHigh.md"
[[rule.override]]
match = { application_name = "report-.*" }
warning = 600
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	lag := func(app string, v float64) Observation {
		return Observation{Quantity: "replay_lag_seconds", Value: v, Labels: map[string]string{"cluster": "7", "application_name": app}}
	}
	var state []Alert
	at := func(offset time.Duration, obs ...Observation) []Alert {
		state = Evaluate(rs, obs, state, t0.Add(offset))
		return state
	}
	describe := func(as []Alert) string {
		var parts []string
		for _, a := range as {
			parts = append(parts, a.Labels["application_name"]+"/"+a.Severity+"/"+a.State)
		}
		return strings.Join(parts, " ")
	}
	steps := []struct {
		offset time.Duration
		obs    []Observation
		want   string
	}{
		{0, []Observation{lag("s1", 10), lag("report-1", 100)}, ""},
		{15 * time.Second, []Observation{lag("s1", 45), lag("report-1", 100)}, "s1/warning/pending"},
		{75 * time.Second, []Observation{lag("s1", 60), lag("report-1", 100)}, "s1/warning/firing"},
		{90 * time.Second, []Observation{lag("s1", 400), lag("report-1", 700)}, "report-1/critical/pending s1/critical/pending report-1/warning/pending s1/warning/firing"},
		{165 * time.Second, []Observation{lag("s1", 400), lag("report-1", 700)}, "report-1/critical/firing s1/critical/firing report-1/warning/firing s1/warning/firing"},
		{180 * time.Second, []Observation{lag("s1", 5), lag("report-1", 5)}, "report-1/critical/firing s1/critical/firing report-1/warning/firing s1/warning/firing"},
		{200 * time.Second, []Observation{lag("s1", 5)}, "report-1/critical/resolved s1/critical/resolved report-1/warning/resolved s1/warning/resolved"},
		{200*time.Second + ResolvedRetention, []Observation{lag("s1", 5)}, ""},
	}
	for _, st := range steps {
		if got := describe(at(st.offset, st.obs...)); got != st.want {
			t.Fatalf("at +%s: %q, want %q", st.offset, got, st.want)
		}
	}
	state = nil
	at(0, lag("s1", 45))
	a := at(time.Minute, lag("s1", 45))[0]
	if a.Summary != "s1 warning 45 > 30" || a.Labels["team"] != "dba" || a.RunbookURL != "docs/alerts/LagHigh.md" ||
		!a.ActiveAt.Equal(t0) || !a.FiredAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("alert %+v", a)
	}
}

// TestEvaluateAggregatesAndBelow: a coarser scope takes the worst value of its objects; a Below
// rule fires under its threshold and takes the lowest.
func TestEvaluateAggregatesAndBelow(t *testing.T) {
	rs, err := Parse("r.toml", []byte(`
[[rule]]
name = "ClusterLag"
quantity = "replay_lag_seconds"
scope = "cluster"
warning = 30
summary = "{{.Value}}"
[[rule]]
name = "FewSlotsLeft"
quantity = "slot_wal_status"
scope = "cluster"
below = true
warning = 1
summary = "{{.Value}}"
`))
	if err != nil {
		t.Fatal(err)
	}
	obs := []Observation{
		{Quantity: "replay_lag_seconds", Value: 10, Labels: map[string]string{"cluster": "7", "application_name": "a"}},
		{Quantity: "replay_lag_seconds", Value: 50, Labels: map[string]string{"cluster": "7", "application_name": "b"}},
		{Quantity: "slot_wal_status", Value: 2, Labels: map[string]string{"cluster": "7", "slot_name": "x"}},
		{Quantity: "slot_wal_status", Value: 0, Labels: map[string]string{"cluster": "7", "slot_name": "y"}},
	}
	as := Evaluate(rs, obs, nil, time.Now())
	if len(as) != 2 || as[0].Rule != "ClusterLag" || as[0].Value != 50 || as[0].Labels["cluster"] != "7" || len(as[0].Labels) != 1 ||
		as[1].Rule != "FewSlotsLeft" || as[1].Value != 0 || as[1].State != StateFiring {
		t.Fatalf("%+v", as)
	}
}
