package alerting

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Severities; each threshold of a rule is an alert of its own.
const (
	SeverityInfo     = "info" // for the record: routed, never paged (the Watchdog)
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// severityRank orders severities, the most severe first.
func severityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityWarning:
		return 1
	}
	return 2
}

// States of an alert.
const (
	StatePending  = "pending"  // the condition holds, for not yet over
	StateFiring   = "firing"   // held for `for`
	StateResolved = "resolved" // fired, then stopped holding (kept for ResolvedRetention)
)

// Observation is one value of a quantity for one object (its labels), as the store saw it.
type Observation struct {
	Quantity string
	Labels   map[string]string
	Value    float64
}

// Alert is one alert of a rule at one severity for one object, with its state.
type Alert struct {
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	Key         string            `json:"key"` // canonical form of Labels, with Rule and Severity its identity
	Labels      map[string]string `json:"labels"`
	State       string            `json:"state"`
	Value       float64           `json:"value"`
	Threshold   float64           `json:"threshold"`
	ActiveAt    time.Time         `json:"active_at"`             // the condition started holding
	FiredAt     time.Time         `json:"fired_at,omitzero"`     // it started firing
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`  // it stopped firing
	LastTrueAt  time.Time         `json:"last_true_at,omitzero"` // the condition last held
	Summary     string            `json:"summary"`
	Description string            `json:"description,omitempty"`
	RunbookURL  string            `json:"runbook_url,omitempty"`
}

// ID identifies an alert across evaluations.
func (a Alert) ID() string { return a.Rule + "/" + a.Severity + "/" + a.Key }

// ResolvedRetention is how long a resolved alert is kept (shown, and sent as resolved).
const ResolvedRetention = 15 * time.Minute

// Evaluate computes every rule's alerts at now from the observations and the previous state:
// pending while the condition holds for less than `for`, firing after, resolved once it stops
// holding (after keep_firing_for), dropped ResolvedRetention after that. A pending alert whose
// condition stops holding is dropped. Alerts come out ordered by rule, severity (critical first)
// and key.
func Evaluate(rs *Rules, obs []Observation, prev []Alert, now time.Time) []Alert {
	before := make(map[string]Alert, len(prev))
	for _, a := range prev {
		before[a.ID()] = a
	}
	byQuantity := map[string][]Observation{}
	for _, o := range obs {
		byQuantity[o.Quantity] = append(byQuantity[o.Quantity], o)
	}
	var out []Alert
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		for _, g := range group(r, byQuantity[r.Quantity]) {
			for _, sev := range []string{SeverityCritical, SeverityWarning, SeverityInfo} {
				threshold, forDur, ok := r.threshold(sev, g.labels)
				if !ok {
					continue
				}
				a := Alert{Rule: r.Name, Severity: sev, Key: g.key, Labels: r.alertLabels(g.labels),
					Value: g.value, Threshold: threshold, RunbookURL: r.RunbookURL}
				holds := g.value > threshold
				if r.Below {
					holds = g.value < threshold
				}
				next, keep := step(before[a.ID()], a, holds, forDur, r.KeepFiringFor.D(), now)
				seen[a.ID()] = true
				if !keep {
					continue
				}
				next.Summary, next.Description, _ = r.render(next) // templates checked at load
				out = append(out, next)
			}
		}
	}
	// Objects no longer observed: their firing alerts resolve, the rest go.
	for id, a := range before {
		if seen[id] || !ruleExists(rs, a.Rule) {
			continue
		}
		if next, keep := step(a, a, false, 0, 0, now); keep {
			out = append(out, next)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		if a.Severity != b.Severity {
			return severityRank(a.Severity) - severityRank(b.Severity)
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

func ruleExists(rs *Rules, name string) bool {
	return slices.ContainsFunc(rs.Rules, func(r Rule) bool { return r.Name == name })
}

// step moves one alert from its previous state (prev, zero when none) given whether its condition
// holds now; keep is false when the alert is to be forgotten.
func step(prev, cur Alert, holds bool, forDur, keepFiring time.Duration, now time.Time) (Alert, bool) {
	known := prev.State != ""
	if holds {
		switch {
		case !known || prev.State == StateResolved:
			cur.ActiveAt = now
		default:
			cur.ActiveAt, cur.FiredAt = prev.ActiveAt, prev.FiredAt
		}
		cur.LastTrueAt = now
		cur.State = StatePending
		if !cur.FiredAt.IsZero() || now.Sub(cur.ActiveAt) >= forDur {
			cur.State = StateFiring
			if cur.FiredAt.IsZero() {
				cur.FiredAt = now
			}
		}
		return cur, true
	}
	if !known {
		return cur, false
	}
	switch prev.State {
	case StatePending:
		return cur, false
	case StateFiring:
		if now.Sub(prev.LastTrueAt) < keepFiring {
			cur.State, cur.ActiveAt, cur.FiredAt, cur.LastTrueAt = StateFiring, prev.ActiveAt, prev.FiredAt, prev.LastTrueAt
			return cur, true
		}
		prev.State, prev.ResolvedAt = StateResolved, now
		prev.Value = cur.Value
		return prev, true
	}
	// Resolved: kept for a while, with the value it resolved at.
	if now.Sub(prev.ResolvedAt) >= ResolvedRetention {
		return cur, false
	}
	return prev, true
}

type observed struct {
	labels map[string]string
	key    string // labelKey(labels)
	value  float64
}

// group reduces a quantity's observations to the rule's scope: the worst value (highest, or
// lowest for a Below rule) among those sharing the scope's labels.
func group(r *Rule, obs []Observation) []observed {
	keys := scopeLabels(r.Scope)
	aggregate := scopeRank(r.Scope) < scopeRank(mustQuantity(r.Quantity).Scope)
	index := map[string]int{}
	var out []observed
	for _, o := range obs {
		labels := o.Labels
		if aggregate {
			labels = make(map[string]string, len(keys))
			for _, k := range keys {
				labels[k] = o.Labels[k]
			}
		}
		k := labelKey(labels)
		i, ok := index[k]
		if !ok {
			index[k] = len(out)
			out = append(out, observed{labels: labels, key: k, value: o.Value})
			continue
		}
		if worse := o.Value > out[i].value; worse != r.Below && o.Value != out[i].value {
			out[i].value = o.Value
		}
	}
	return out
}

func mustQuantity(name string) Quantity {
	q, _ := quantity(name)
	return q
}

// threshold is the rule's threshold and `for` at sev for an object, overrides applied; ok is false
// when the rule has no such threshold for it.
func (r *Rule) threshold(sev string, labels map[string]string) (float64, time.Duration, bool) {
	t, forDur := r.Warning, r.For.D()
	switch sev {
	case SeverityCritical:
		t = r.Critical
	case SeverityInfo:
		t = r.Info
	}
	for _, o := range r.Overrides {
		if !o.matches(labels) {
			continue
		}
		if o.Disabled {
			return 0, 0, false
		}
		if sev == SeverityCritical && o.Critical != nil {
			t = o.Critical
		}
		if sev == SeverityWarning && o.Warning != nil {
			t = o.Warning
		}
		if o.For != nil {
			forDur = o.For.D()
		}
		break
	}
	if t == nil {
		return 0, 0, false
	}
	return *t, forDur, true
}

func (o *Override) matches(labels map[string]string) bool {
	for k, re := range o.match {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// alertLabels are an alert's labels: the object's, then the rule's own (which never replace them).
func (r *Rule) alertLabels(object map[string]string) map[string]string {
	l := maps.Clone(object)
	if l == nil {
		l = map[string]string{}
	}
	for k, v := range r.Labels {
		if _, ok := l[k]; !ok {
			l[k] = v
		}
	}
	return l
}

// labelKey is the canonical form of a label set.
func labelKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[k]))
	}
	return b.String()
}
