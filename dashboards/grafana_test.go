package dashboards_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// This file reproduces what Grafana (7.0 and later) does to a PostgreSQL panel's SQL before the
// database sees it, so that the tests run the statements Grafana would run.

// grafanaVars are a dashboard's template variable values at query time.
type grafanaVars struct {
	interval time.Duration       // $__interval
	values   map[string][]string // multi-value/include-all variables, by name
	multi    map[string]bool     // whether the variable is quoted (multi or includeAll)
	from, to time.Time           // the dashboard's time range
}

// variableRef is Grafana's template variable syntax: $name, ${name}, [[name]].
var variableRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]`)

// macroCall is the PostgreSQL datasource's macro syntax (pkg/tsdb/sqleng): no nested parentheses.
var macroCall = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^)]*)\)`)

// expand interpolates template variables the way the PostgreSQL datasource's frontend does
// (values of a multi-value or include-all variable are quoted literals joined by commas), then the
// backend's macros. Unknown variables and macros are errors, as they are in Grafana.
func expand(sql string, v grafanaVars) (string, error) {
	var errs []string
	sql = variableRef.ReplaceAllStringFunc(sql, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		switch name {
		case "__interval":
			return formatInterval(v.interval)
		case "__interval_ms":
			return fmt.Sprint(v.interval.Milliseconds())
		}
		if strings.HasPrefix(name, "__") {
			return ref // a macro, expanded below
		}
		vals, ok := v.values[name]
		if !ok {
			errs = append(errs, "unknown variable $"+name)
			return ref
		}
		if !v.multi[name] {
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

func expandMacro(name string, args []string, v grafanaVars) (string, error) {
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	switch name {
	case "__timeFilter":
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0], rfc(v.from), rfc(v.to)), nil
	case "__timeFrom":
		return "'" + rfc(v.from) + "'", nil
	case "__timeTo":
		return "'" + rfc(v.to) + "'", nil
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
	return "", fmt.Errorf("macro $%s is not one the tests know Grafana 7 has", name)
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

func TestExpand(t *testing.T) {
	from := time.Date(2026, 2, 27, 14, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	vars := grafanaVars{
		interval: time.Minute,
		values:   map[string][]string{"collector_id": {"a", "b'c"}, "single": {"x"}},
		multi:    map[string]bool{"collector_id": true},
		from:     from,
		to:       to,
	}
	tests := []struct {
		name, in, want, err string
	}{
		{name: "multi-value variable is quoted", in: "collector_id IN ($collector_id)",
			want: "collector_id IN ('a','b''c')"},
		{name: "braced and bracketed forms", in: "${collector_id} [[collector_id]]", want: "'a','b''c' 'a','b''c'"},
		{name: "single-value variable is raw", in: "$single", want: "x"},
		{name: "time filter", in: `$__timeFilter("timestamp")`,
			want: `"timestamp" BETWEEN '2026-02-27T14:00:00Z' AND '2026-02-27T15:00:00Z'`},
		{name: "time group alias with $__interval", in: `$__timeGroupAlias(m."timestamp", $__interval)`,
			want: `floor(extract(epoch from m."timestamp")/60)*60 AS "time"`},
		{name: "time group with quoted interval", in: `$__timeGroup(at, '1h')`,
			want: `floor(extract(epoch from at)/3600)*3600`},
		{name: "interval in ms", in: `$__interval_ms`, want: "60000"},
		{name: "time from and to", in: `$__timeFrom() $__timeTo()`,
			want: `'2026-02-27T14:00:00Z' '2026-02-27T15:00:00Z'`},
		{name: "unknown variable", in: "$nope", err: "unknown variable $nope"},
		{name: "unknown macro", in: "$__unixEpochNanoFilter(x)", err: "not one the tests know"},
		{name: "time group without interval", in: "$__timeGroup(x)", err: "needs a column and an interval"},
		{name: "bad interval", in: "$__timeGroup(x, 1q)", err: "bad interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := expand(tc.in, vars)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("expand(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
