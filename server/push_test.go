package server

import (
	"bytes"
	stdjson "encoding/json"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
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
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1,"labels":{"x":"1","x":"2"}}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1,"value":2}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1,"labels":{"x":"\u0000"}}]}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1}],"snapshot":{"clusters":[{"system_identifier":"7","instances":[{"name":"a","name":"b"}]}]}}`,
		`{"collected_at":"2026-02-27T15:00:00Z","by_id":{"series_ids":[1,2],"values":[1.5,-2],"timestamps_ms":[1772204400000,1772204390000]}}`,
		`{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1}],"by_id":{"series_ids":[3],"values":[0]}}`,
		`{"collected_at":"2026-02-27T15:00:00Z","by_id":{"series_ids":[1.5,-1,0],"values":[1e999,"x",null]}}`,
		`{"collected_at":"2026-02-27T15:00:00Z","by_id":{"series_ids":[1],"values":[1,2],"timestamps_ms":[]}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePush(bytes.NewReader(body), fuzzLimits())
		// Read a byte at a time, every UTF-8 sequence and token is cut across reads: same answer.
		if req2, err2 := decodePush(iotest.OneByteReader(bytes.NewReader(body)), fuzzLimits()); (err == nil) != (err2 == nil) ||
			err != nil && *err != *err2 || err == nil && req.Samples() != req2.Samples() {
			t.Fatalf("read whole: %v; read byte by byte: %v", err, err2)
		}
		if err != nil {
			if err.status < 400 || err.status > 499 || err.code == "" || err.message == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if req.CollectedAt.IsZero() || req.Samples() == 0 || req.Samples() > 1000 {
			t.Fatalf("accepted %+v", req)
		}
		if by := req.ByID; by != nil {
			if len(by.Values) != by.Len() || len(by.TimestampsMS) != 0 && len(by.TimestampsMS) != by.Len() ||
				slices.ContainsFunc(by.SeriesIDs, func(id int64) bool { return id <= 0 }) ||
				slices.ContainsFunc(by.Values, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }) {
				t.Fatalf("accepted by_id %+v", by)
			}
		}
		if !utf8.Valid(body) {
			t.Fatal("accepted invalid UTF-8")
		}
		if dup := duplicateName(body); dup != "" {
			t.Fatalf("accepted the name %q twice in one object", dup)
		}
		for i, s := range req.Metrics {
			if !metricNamePattern.MatchString(s.Name) || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) ||
				len(s.Labels) > maxLabels || s.Timestamp.IsZero() {
				t.Fatalf("accepted sample %d: %+v", i, s)
			}
			for k, v := range s.Labels {
				if !labelNamePattern.MatchString(k) || strings.HasPrefix(k, "__") || len(v) > maxLabelValueBytes || strings.ContainsRune(v, 0) {
					t.Fatalf("accepted label %q=%q", k, v)
				}
			}
		}
	})
}

// duplicateName is the fuzz oracle for duplicate names: the first object member name that occurs
// twice in one object of body, found with encoding/json's tokenizer (not the decoder under test).
func duplicateName(body []byte) string {
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	type level struct {
		object bool
		key    bool // the next string token is a member name
		names  map[string]bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case stdjson.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &level{object: v == '{', key: v == '{', names: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
		default:
			if top == nil || !top.object {
				continue
			}
			if top.key {
				name, _ := v.(string)
				if top.names[name] {
					return name
				}
				top.names[name] = true
				top.key = false
			} else {
				top.key = true
			}
		}
	}
}

// TestDecodePushFaultOrder pins which fault a push with several is refused for: the body's
// structure anywhere first, then the push's own fields, then the samples by index, each by its
// first fault (UTF-8, then types and fields, then rules).
func TestDecodePushFaultOrder(t *testing.T) {
	const at = `"collected_at":"2026-02-27T15:00:00Z"`
	cases := []struct {
		name, body, code, message string
	}{
		{"syntax error after a bad sample", `{` + at + `,"metrics":[{"name":"a","value":"1"},{"name":"a","value":1},{"name":"a",}]}`,
			codeMalformedJSON, "metrics[2]: malformed JSON at byte 110: invalid character '}' at start of string (expecting '\"')"},
		{"unknown field after a bad sample", `{` + at + `,"metrics":[{"name":"a","value":"1"}],"extra":1}`,
			codeMalformedJSON, `unknown field "extra"`},
		{"invalid snapshot after a bad sample", `{` + at + `,"metrics":[{"name":"1a","value":1,"labels":{"a":"` + "\xff" + `"}}],"snapshot":{"clusters":[{"system_identifier":"` + "\xc3\x28" + `"}]}}`,
			codeInvalidUTF8, "snapshot: invalid UTF-8"},
		{"missing collected_at before a bad sample", `{"metrics":[{"name":"a","value":"1"}]}`,
			codeValidation, "collected_at is required"},
		{"bad status before a bad sample", `{` + at + `,"metrics":[{"name":"a","value":"1"}],"status":{"buffer_utilization":2}}`,
			codeValidation, "status: buffer_utilization 2 is outside 0..1"},
		{"broken rule before a later type error", `{` + at + `,"metrics":[{"name":"a","value":1},{"name":"1a","value":1},{"name":"a","value":"1"}]}`,
			codeInvalidSample, `metrics[1]: name "1a" does not match [a-zA-Z_:][a-zA-Z0-9_:]*`},
		{"type error before a later broken rule", `{` + at + `,"metrics":[{"name":"a","value":"1"},{"name":"1a","value":1}]}`,
			codeInvalidSample, "metrics[0]: value: expected a finite number, got string"},
		{"type error before later invalid UTF-8", `{` + at + `,"metrics":[{"name":"a","value":1,"unit":"s"},{"name":"a","value":1,"labels":{"a":"` + "\xff" + `"}}]}`,
			codeInvalidSample, `metrics[0]: unknown field "unit"`},
		{"invalid UTF-8 before a type error in the same sample", `{` + at + `,"metrics":[{"name":"a","value":1},{"name":"a","value":"1","labels":{"a":"` + "\xe2\x82" + `"}}]}`,
			codeInvalidUTF8, "metrics[1]: invalid UTF-8"},
		{"timestamp of the wrong type", `{` + at + `,"metrics":[{"name":"a","value":1,"timestamp":5}]}`,
			codeInvalidSample, "metrics[0]: timestamp: expected an RFC 3339 time string, got number"},
		{"U+FFFD spelt out is valid", `{` + at + `,"metrics":[{"name":"a","value":1,"labels":{"a":"` + "\xef\xbf\xbd\\ufffd\xf0\x9f\x98\x80" + `"}},{"name":"1a","value":1}]}`,
			codeInvalidSample, `metrics[1]: name "1a" does not match`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.body), iotest.OneByteReader(strings.NewReader(tc.body))} {
				_, err := decodePush(r, fuzzLimits())
				if err == nil || err.status != 400 || err.code != tc.code || !strings.HasPrefix(err.message, tc.message) {
					t.Fatalf("got %v, want %s: %s", err, tc.code, tc.message)
				}
			}
		})
	}
}

// FuzzPushReaderUTF8 checks the streaming UTF-8 check against utf8.Valid, with the stream cut into
// reads of every size: the first invalid byte is where the longest valid prefix ends.
func FuzzPushReaderUTF8(f *testing.F) {
	for _, s := range []string{"", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac\xf0\x9f\x98\x80", "a\xff", "\xc3",
		"ab\xe2\x82", "\xed\xa0\x80", "\xc0\x80", "\xef\xbf\xbd", "\xf0\x9f\x98", "\xf4\x90\x80\x80", "\xe2\x82x\xe2\x82\xac"} {
		for chunk := range 5 {
			f.Add([]byte(s), uint8(chunk))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		want := int64(-1)
		if !utf8.Valid(data) {
			for want = int64(len(data)); !utf8.Valid(data[:want]); want-- {
			}
		}
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &cutReader{r: r, size: int(chunk)}
		}
		pr := newPushReader(r, time.Time{})
		if _, err := io.Copy(io.Discard, pr); err != nil {
			t.Fatal(err)
		}
		if pr.invalidAt != want {
			t.Fatalf("%q in reads of %d: first invalid byte at %d, want %d", data, chunk, pr.invalidAt, want)
		}
	})
}

// cutReader reads at most size bytes at a time.
type cutReader struct {
	r    io.Reader
	size int
}

func (c *cutReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.size)])
}

// TestDecodePushDeadline: a body still being read past its deadline is refused, 408.
func TestDecodePushDeadline(t *testing.T) {
	lim := fuzzLimits()
	lim.deadline = time.Now().Add(-time.Second)
	body := `{"collected_at":"2026-02-27T15:00:00Z","metrics":[{"name":"a","value":1}]}`
	_, err := decodePush(iotest.OneByteReader(strings.NewReader(body)), lim)
	if err == nil || err.status != http.StatusRequestTimeout || err.code != codeRequestTimeout {
		t.Fatalf("got %v", err)
	}
}
