package server

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzNow = time.Date(2026, 2, 27, 15, 0, 30, 0, time.UTC)

// The naming rules as regular expressions: an independent oracle for the byte-loop validators.
var (
	metricNamePattern = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNamePattern  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func TestNameValidatorsMatchTheRules(t *testing.T) {
	names := []string{"", "a", "_", ":", "1", "a1", "1a", "a:b", "a-b", "a b", "é", "pg_up", "__name__", "A_Z09:", "a\x00", "a.b"}
	for _, n := range names {
		if got, want := validMetricName(n), metricNamePattern.MatchString(n); got != want {
			t.Errorf("validMetricName(%q) = %v, want %v", n, got, want)
		}
		if got, want := validLabelName(n), labelNamePattern.MatchString(n); got != want {
			t.Errorf("validLabelName(%q) = %v, want %v", n, got, want)
		}
	}
}

func FuzzNameValidators(f *testing.F) {
	for _, s := range []string{"pg_up", "1a", "a:b", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validMetricName(s) != metricNamePattern.MatchString(s) || validLabelName(s) != labelNamePattern.MatchString(s) {
			t.Fatalf("validators disagree with the rules on %q", s)
		}
	})
}

func fuzzLimits() pushLimits {
	return pushLimits{maxSamples: 1000, now: fuzzNow, retention: 30 * 24 * time.Hour}
}

func TestDecodePushFillsTimestamps(t *testing.T) {
	body := `{"collected_at":"2026-02-27T15:00:00Z","metrics":[
		{"name":"pg_up","value":1},
		{"name":"pg_wal_lsn_bytes","value":5e9,"labels":{"instance":"db1:5432"},"timestamp":"2026-02-27T14:59:50Z"}],
		"status":{"version":"1.0","instances":1,"interval_seconds":10,"cycle_seconds":0.2,"buffer_utilization":0.5,
		"buffer_dropped_total":0,"collection_failures_total":0,"collections_total":3}}`
	req, err := decodePush(strings.NewReader(body), fuzzLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Metrics) != 2 || !req.Metrics[0].Timestamp.Equal(req.CollectedAt) ||
		req.Metrics[1].Timestamp.Equal(req.CollectedAt) || req.Metrics[1].Value != 5e9 || req.Status.CollectionsTotal != 3 {
		t.Fatalf("decoded %+v", req)
	}
}

func TestDecodePushSampleCap(t *testing.T) {
	lim := fuzzLimits()
	lim.maxSamples = 2
	body := `{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1},{"name":"a","value":1},{"name":"a","value":1}]}`
	_, err := decodePush(strings.NewReader(body), lim)
	if err == nil || err.status != 413 || !strings.Contains(err.message, "more than 2 samples") {
		t.Fatalf("got %v", err)
	}
}

func TestCapReader(t *testing.T) {
	for _, tc := range []struct {
		size    int
		tooLarg bool
	}{{99, false}, {100, false}, {101, true}} {
		c := &capReader{r: bytes.NewReader(make([]byte, tc.size)), max: 100}
		var err error
		buf := make([]byte, 7)
		for err == nil {
			_, err = c.Read(buf)
		}
		if got := err != nil && strings.Contains(err.Error(), "exceeds 100 bytes"); got != tc.tooLarg {
			t.Errorf("size %d: err %v", tc.size, err)
		}
	}
}

// FuzzDecodePush feeds arbitrary bodies to the push decoder: it must never panic, and whatever it
// accepts must satisfy every rule the store relies on.
func FuzzDecodePush(f *testing.F) {
	seeds := []string{
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"pg_up","value":1,"labels":{"instance":"db1:5432"}}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"pg_replication_replay_lag_bytes","value":1024,"labels":{"instance":"db1:5432","application_name":"standby1"},"timestamp":"2026-02-27T15:00:00Z"}],"snapshot":{"collected_at":"2026-02-27T15:00:00Z","clusters":[{"system_identifier":"7","timeline":1,"instances":[],"standbys":[],"slots":[],"subscriptions":[]}]},"status":{"version":"1","instances":1,"interval_seconds":10,"cycle_seconds":1,"buffer_utilization":0.1,"buffer_dropped_total":0,"collection_failures_total":0,"collections_total":1}}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"1bad","value":1}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1e999}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":"NaN"}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1,"labels":{"__x":"y"}}]}`,
		"{\"collected_at\":\"2026-02-27T15:00:00Z\",\"metrics\":[{\"name\":\"a\",\"value\":1,\"labels\":{\"a\":\"\xff\"}}]}",
		`{"metrics":[{"name":"a","value":1}],"metrics":[]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1}]} trailing`,
		`[]`, `null`, ``, `{`, `{"collected_at":`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePush(bytes.NewReader(body), fuzzLimits())
		if err != nil {
			if err.status < 400 || err.status > 499 || err.code == "" || err.message == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if req.CollectedAt.IsZero() || len(req.Metrics) == 0 || len(req.Metrics) > 1000 {
			t.Fatalf("accepted %+v", req)
		}
		if !utf8.Valid(body) {
			t.Fatal("accepted invalid UTF-8")
		}
		for i, s := range req.Metrics {
			if !metricNamePattern.MatchString(s.Name) || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) ||
				len(s.Labels) > maxLabels || s.Timestamp.IsZero() {
				t.Fatalf("accepted sample %d: %+v", i, s)
			}
			for k, v := range s.Labels {
				if !labelNamePattern.MatchString(k) || strings.HasPrefix(k, "__") || len(v) > maxLabelValueBytes {
					t.Fatalf("accepted label %q=%q", k, v)
				}
			}
		}
	})
}
