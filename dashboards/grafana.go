package dashboards

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// This file reproduces what Grafana (7.0 and later) does to a PostgreSQL panel's SQL before the
// database sees it, so that the tests and the runbook's grafana check run the statements Grafana
// would run.

// Vars are a dashboard's template variable values at query time.
type Vars struct {
	Interval time.Duration       // $__interval
	Values   map[string][]string // multi-value/include-all variables, by name
	Multi    map[string]bool     // whether the variable is quoted (multi or includeAll)
	From, To time.Time           // the dashboard's time range
}

// variableRef is Grafana's template variable syntax: $name, ${name}, [[name]].
var variableRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]`)

// VariableRefs names the template variables sql refers to (macros and $__interval aside).
func VariableRefs(sql string) []string {
	var out []string
	for _, m := range variableRef.FindAllStringSubmatch(sql, -1) {
		if name := m[1] + m[2] + m[3]; !strings.HasPrefix(name, "__") {
			out = append(out, name)
		}
	}
	return out
}

// macroCall is the PostgreSQL datasource's macro syntax (pkg/tsdb/sqleng): no nested parentheses.
var macroCall = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^)]*)\)`)

// Expand interpolates template variables the way the PostgreSQL datasource's frontend does
// (values of a multi-value or include-all variable are quoted literals joined by commas), then the
// backend's macros. Unknown variables and macros are errors, as they are in Grafana.
func Expand(sql string, v Vars) (string, error) {
	var errs []string
	sql = variableRef.ReplaceAllStringFunc(sql, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		switch name {
		case "__interval":
			return formatInterval(v.Interval)
		case "__interval_ms":
			return fmt.Sprint(v.Interval.Milliseconds())
		}
		if strings.HasPrefix(name, "__") {
			return ref // a macro, expanded below
		}
		vals, ok := v.Values[name]
		if !ok {
			errs = append(errs, "unknown variable $"+name)
			return ref
		}
		if !v.Multi[name] {
			return strings.Join(vals, ",")
		}
		quoted := make([]string, len(vals))
		for i, s := range vals {
			quoted[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		return strings.Join(quoted, ",")
	})
	sql = macroCall.ReplaceAllStringFunc(sql, func(call string) string {
		m := macroCall.FindStringSubmatch(call)
		args := strings.Split(m[2], ",")
		for i := range args {
			args[i] = strings.Trim(args[i], " ")
		}
		out, err := expandMacro(m[1], args, v)
		if err != nil {
			errs = append(errs, err.Error())
			return call
		}
		return out
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if strings.Contains(sql, "$") {
		return "", fmt.Errorf("unexpanded $ left in %q", sql)
	}
	return sql, nil
}

func expandMacro(name string, args []string, v Vars) (string, error) {
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	switch name {
	case "__timeFilter":
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0], rfc(v.From), rfc(v.To)), nil
	case "__timeFrom":
		return "'" + rfc(v.From) + "'", nil
	case "__timeTo":
		return "'" + rfc(v.To) + "'", nil
	case "__timeGroup", "__timeGroupAlias":
		if len(args) != 2 {
			return "", fmt.Errorf("$%s needs a column and an interval, got %q", name, args)
		}
		d, err := parseInterval(strings.Trim(args[1], `'"`))
		if err != nil {
			return "", fmt.Errorf("$%s: %w", name, err)
		}
		out := fmt.Sprintf("floor(extract(epoch from %s)/%v)*%v", args[0], d.Seconds(), d.Seconds())
		if name == "__timeGroupAlias" {
			out += ` AS "time"`
		}
		return out, nil
	}
	return "", fmt.Errorf("macro $%s is not one pgAnalytics knows Grafana 7 has", name)
}

// parseInterval accepts Grafana's interval strings the dashboards use: Go durations plus days.
func parseInterval(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days <= 0 {
			return 0, fmt.Errorf("bad interval %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad interval %q", s)
	}
	return d, nil
}

// formatInterval renders $__interval as Grafana does (1m, 30s, 2h).
func formatInterval(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}
