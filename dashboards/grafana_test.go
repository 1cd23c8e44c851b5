package dashboards_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/dashboards"
)

func TestExpand(t *testing.T) {
	from := time.Date(2026, 2, 27, 14, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	vars := dashboards.Vars{
		Interval: time.Minute,
		Values:   map[string][]string{"collector_id": {"a", "b'c"}, "single": {"x"}},
		Multi:    map[string]bool{"collector_id": true},
		From:     from,
		To:       to,
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
		{name: "unknown macro", in: "$__unixEpochNanoFilter(x)", err: "not one pgAnalytics knows"},
		{name: "time group without interval", in: "$__timeGroup(x)", err: "needs a column and an interval"},
		{name: "bad interval", in: "$__timeGroup(x, 1q)", err: "bad interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dashboards.Expand(tc.in, vars)
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
