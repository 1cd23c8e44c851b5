// Package alerting holds the alert rules (a TOML file, the shipped default embedded) and their
// evaluation: from the quantities the store observes, each rule's alerts and their pending →
// firing → resolved state. It does no I/O of its own.
package alerting

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// Scopes: what one alert of a rule is about, and so which labels tell its alerts apart.
const (
	ScopeGlobal    = "global"
	ScopeCollector = "collector"
	ScopeCluster   = "cluster"
	ScopeInstance  = "instance"
	ScopeStandby   = "standby"
	ScopeSlot      = "slot"
)

// scopeLabels are the labels that identify one alert of scope (observations carry more; the
// worst value among those sharing these labels is the alert's).
func scopeLabels(scope string) []string {
	switch scope {
	case ScopeCollector:
		return []string{"collector_id"}
	case ScopeCluster:
		return []string{"cluster"}
	case ScopeInstance:
		return []string{"cluster", "instance"}
	case ScopeStandby:
		return []string{"cluster", "application_name"}
	case ScopeSlot:
		return []string{"cluster", "slot_name"}
	}
	return nil
}

// Quantity is one measured thing a rule can read, and the finest scope it is observed at.
type Quantity struct {
	Name, Scope, Help string
}

// Quantities lists what the store observes (store.Observe), finest scope first within each group.
func Quantities() []Quantity {
	return append(fixedQuantities(), eventQuantities()...)
}

// EventWindow is how far back the events_*_15m quantities count.
const EventWindow = 15 * time.Minute

// EventQuantity is the quantity that counts a replication event kind over EventWindow.
func EventQuantity(kind string) string { return "events_" + kind + "_15m" }

// eventQuantities count each cluster event kind (api.EventKinds, collector events aside) per member.
func eventQuantities() []Quantity {
	var out []Quantity
	for _, k := range api.EventKinds() {
		if strings.HasPrefix(k, "collector_") {
			continue
		}
		out = append(out, Quantity{EventQuantity(k), ScopeInstance,
			"replication events of kind " + k + " in the last 15 minutes (GET /api/v1/events); cluster-wide ones have an empty instance"})
	}
	return out
}

func fixedQuantities() []Quantity {
	return []Quantity{
		{"auth_failures_per_minute", ScopeGlobal, "failed authentication attempts in the worst of the last two minutes"},
		{"rate_limited_per_minute", ScopeGlobal, "requests refused with 429, summed over servers, worst of the last two minutes"},
		{"db_errors_per_minute", ScopeGlobal, "database errors, summed over servers, worst of the last two minutes"},
		{"api_p95_ms", ScopeGlobal, "API response time p95 of the worst server, worst of the last two minutes"},
		{"collection_failures_percent", ScopeCollector, "failed collections in % over the last 10 minutes"},
		{"buffer_utilization_percent", ScopeCollector, "collector spool utilization in %"},
		{"collector_push_age_intervals", ScopeCollector, "time since the collector's last push, in collection intervals"},
		{"instance_down", ScopeInstance, "1 when a monitored instance does not answer"},
		{"standby_disconnected", ScopeStandby, "1 when a standby has no pg_stat_replication row or no streaming WAL receiver, or a physical slot has no standby"},
		{"replay_lag_seconds", ScopeStandby, "standby replay lag in seconds, as its primary reports it"},
		{"replay_lag_bytes", ScopeStandby, "standby replay lag in bytes, as its primary reports it"},
		{"slot_inactive", ScopeSlot, "1 when a replication slot has no active consumer"},
		{"slot_wal_status", ScopeSlot, "pg_replication_slots.wal_status: 0 reserved, 1 extended, 2 unreserved, 3 lost"},
		{"slot_time_to_loss_seconds", ScopeSlot, "seconds until a slot's retained WAL outgrows safe_wal_size, at its growth rate of the last 15 minutes (absent while it does not grow or has no limit)"},
		{"xid_wraparound_percent", ScopeInstance, "transaction IDs used towards wraparound, in % (worst database; pg_database_xid_wraparound_pct)"},
		{"archiver_failures_15m", ScopeInstance, "WAL archiving failures in the last 15 minutes (pg_archiver_failed_total's increase)"},
		{"cluster_primaries", ScopeCluster, "monitored primaries that answer in a cluster (one system identifier), over every collector"},
		{"primary_change_age_seconds", ScopeCluster, "seconds since the cluster's primary last changed (a failover, a promotion); absent until it does"},
		{"timeline_change_age_seconds", ScopeCluster, "seconds since the cluster's timeline last changed; absent until it does"},
		{"watchdog", ScopeGlobal, "always 1 while an API server evaluates the rules: the dead man's switch"},
	}
}

func quantity(name string) (Quantity, bool) {
	for _, q := range Quantities() {
		if q.Name == name {
			return q, true
		}
	}
	return Quantity{}, false
}

// scopeRank orders scopes from the coarsest; a rule may aggregate a quantity to a coarser scope.
func scopeRank(scope string) int {
	switch scope {
	case ScopeGlobal:
		return 0
	case ScopeCollector, ScopeCluster:
		return 1
	case ScopeInstance, ScopeStandby, ScopeSlot:
		return 2
	}
	return -1
}

// Duration is a time.Duration written as a Go duration string ("15m"). A struct, so that TOML
// hands a bare number to UnmarshalText (and it is refused) instead of reading it as nanoseconds.
type Duration struct{ d time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: write durations as quoted strings such as \"30s\" or \"5m\"", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.d = v
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return d.d }

// Rule is one alert rule: a quantity at a scope, compared with an info, a warning and a critical
// threshold (each its own alert, as Alertmanager inhibits the warning while the critical fires).
type Rule struct {
	Name     string   `toml:"name"`
	Quantity string   `toml:"quantity"`
	Scope    string   `toml:"scope"`
	Warning  *float64 `toml:"warning"`
	Critical *float64 `toml:"critical"`
	Info     *float64 `toml:"info"` // an alert for the record (severity info), e.g. the Watchdog
	// Below fires when the value is under the threshold instead of over it.
	Below bool     `toml:"below"`
	For   Duration `toml:"for"`
	// KeepFiringFor keeps an alert firing that long after its condition cleared.
	KeepFiringFor Duration          `toml:"keep_firing_for"`
	Labels        map[string]string `toml:"labels"`
	Summary       string            `toml:"summary"`
	Description   string            `toml:"description"`
	RunbookURL    string            `toml:"runbook_url"`
	Overrides     []Override        `toml:"override"`

	summary, description *template.Template
	line                 int
}

// Override changes a rule's thresholds or `for` for the alerts whose labels match every Match
// entry (an anchored regular expression per label, as Prometheus' =~); the first match wins.
type Override struct {
	Match    map[string]string `toml:"match"`
	Warning  *float64          `toml:"warning"`
	Critical *float64          `toml:"critical"`
	For      *Duration         `toml:"for"`
	Disabled bool              `toml:"disabled"`

	match map[string]*regexp.Regexp
}

// Rules is a checked rules file.
type Rules struct {
	Rules []Rule `toml:"rule"`
}

var (
	ruleName  = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,99}$`)
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)
)

// Parse decodes and checks a rules file (path names it in messages): unknown keys, bad values and
// every rule that cannot be evaluated are refused, each with its file:line.
func Parse(path string, data []byte) (*Rules, error) {
	var rs Rules
	if err := tomlfile.Decode(path, data, &rs); err != nil {
		return nil, locateBareDuration(path, data, err)
	}
	lines := ruleLines(data)
	var errs []error
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if i < len(lines) {
			r.line = lines[i]
		}
		at := fmt.Sprintf("%s:%d: rule %q", path, r.line, r.Name)
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s: the name is used twice", at))
		}
		seen[r.Name] = true
	}
	if len(rs.Rules) == 0 {
		errs = append(errs, fmt.Errorf("%s: no [[rule]]", path))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &rs, nil
}

// ruleLines finds the line of each [[rule]] header, in order.
func ruleLines(data []byte) []int {
	var out []int
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "[[rule]]" {
			out = append(out, i+1)
		}
	}
	return out
}

// badDuration finds the value a duration refused, which go-toml reports without a position.
var badDuration = regexp.MustCompile(`invalid duration "([^"]*)"`)

// locateBareDuration adds the line to a refused duration, which go-toml reports without a
// position: the first line giving a duration key that bare value.
func locateBareDuration(path string, data []byte, err error) error {
	var te *tomlfile.Error
	if !errors.As(err, &te) || te.Line > 0 {
		return err
	}
	m := badDuration.FindStringSubmatch(te.Msg)
	if m == nil {
		return err
	}
	bare := regexp.MustCompile(`^\s*(for|keep_firing_for)\s*=\s*` + regexp.QuoteMeta(m[1]) + `\s*(#.*)?$`)
	for i, line := range strings.Split(string(data), "\n") {
		if bare.MatchString(line) {
			te.Line = i + 1
			break
		}
	}
	return err
}

func (r *Rule) check() error {
	if !ruleName.MatchString(r.Name) {
		return errors.New("name must be 1-100 letters and digits starting with a capital letter")
	}
	q, ok := quantity(r.Quantity)
	if !ok {
		names := make([]string, 0)
		for _, q := range Quantities() {
			names = append(names, q.Name)
		}
		return fmt.Errorf("unknown quantity %q (one of %s)", r.Quantity, strings.Join(names, ", "))
	}
	if r.Scope == "" {
		r.Scope = q.Scope
	}
	switch {
	case scopeRank(r.Scope) < 0:
		return fmt.Errorf("unknown scope %q (global, collector, cluster, instance, standby or slot)", r.Scope)
	case scopeRank(r.Scope) > scopeRank(q.Scope) || (scopeRank(r.Scope) == scopeRank(q.Scope) && r.Scope != q.Scope):
		return fmt.Errorf("scope %q: %s is observed per %s, so a rule can only aggregate it to a coarser scope", r.Scope, q.Name, q.Scope)
	case r.Warning == nil && r.Critical == nil && r.Info == nil:
		return errors.New("needs an info, a warning or a critical threshold")
	case r.Warning != nil && r.Critical != nil && (!r.Below && *r.Critical < *r.Warning || r.Below && *r.Critical > *r.Warning):
		return errors.New("the critical threshold must be beyond the warning one")
	case r.Summary == "":
		return errors.New("needs a summary")
	}
	for k := range r.Labels {
		if !labelName.MatchString(k) || k == "alertname" || k == "severity" {
			return fmt.Errorf("label %q: want a label name other than alertname and severity", k)
		}
	}
	var err error
	if r.summary, err = template.New("summary").Option("missingkey=zero").Parse(r.Summary); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if r.description, err = template.New("description").Option("missingkey=zero").Parse(r.Description); err != nil {
		return fmt.Errorf("description: %w", err)
	}
	for i := range r.Overrides {
		o := &r.Overrides[i]
		if len(o.Match) == 0 {
			return fmt.Errorf("override %d: needs a match", i+1)
		}
		o.match = make(map[string]*regexp.Regexp, len(o.Match))
		for k, v := range o.Match {
			re, err := regexp.Compile("^(?:" + v + ")$")
			if err != nil {
				return fmt.Errorf("override %d: match %s: %w", i+1, k, err)
			}
			o.match[k] = re
		}
	}
	// A template that fails on a sample alert would fail on every real one.
	if _, _, err := r.render(Alert{Value: 1, Threshold: 1, Labels: map[string]string{}}); err != nil {
		return err
	}
	return nil
}

// render fills the summary and description of a.
func (r *Rule) render(a Alert) (summary, description string, err error) {
	data := struct {
		Value, Threshold float64
		Severity         string
		Labels           map[string]string
	}{a.Value, a.Threshold, a.Severity, a.Labels}
	var b strings.Builder
	if err := r.summary.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("summary: %w", err)
	}
	summary = b.String()
	b.Reset()
	if err := r.description.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("description: %w", err)
	}
	return summary, b.String(), nil
}
