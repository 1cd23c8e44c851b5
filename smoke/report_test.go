package smoke

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/junit"
)

var sampleResults = []Result{
	{Name: CheckHealth, Status: StatusPass, Duration: 12 * time.Millisecond, Message: "healthy"},
	{Name: CheckSecurityHeaders, Status: StatusFail, Duration: 3 * time.Millisecond, Message: `X-Frame-Options is "", want DENY: fix it`},
	{Name: CheckTLS, Status: StatusSkip, Message: "plain HTTP"},
}

var sampleSummary = Summary{Passed: 1, Failed: 1, Skipped: 1, Duration: 1500 * time.Millisecond}

func render(t *testing.T, format string) string {
	t.Helper()
	var buf bytes.Buffer
	rep, err := NewReporter(format, &buf)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{CheckHealth, CheckSecurityHeaders, CheckTLS}
	if err := rep.Start(names); err != nil {
		t.Fatal(err)
	}
	for _, r := range sampleResults {
		if err := rep.Result(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rep.Finish(sampleSummary); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestJSONReport(t *testing.T) {
	var got struct {
		Checks []struct {
			Name       string `json:"name"`
			Status     string `json:"status"`
			DurationMS *int64 `json:"duration_ms"`
			Message    string `json:"message"`
		} `json:"checks"`
		Summary map[string]int64 `json:"summary"`
	}
	dec := json.NewDecoder(strings.NewReader(render(t, "json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Checks) != 3 || got.Checks[1].Status != "fail" || got.Checks[2].Status != "skip" || *got.Checks[0].DurationMS != 12 {
		t.Errorf("checks = %+v", got.Checks)
	}
	want := map[string]int64{"passed": 1, "failed": 1, "skipped": 1, "duration_ms": 1500}
	for k, v := range want {
		if got.Summary[k] != v {
			t.Errorf("summary[%s] = %d, want %d", k, got.Summary[k], v)
		}
	}
	if len(got.Summary) != len(want) {
		t.Errorf("summary has extra keys: %v", got.Summary)
	}
}

func TestJSONReportEmptyRunHasArray(t *testing.T) {
	var buf bytes.Buffer
	rep, _ := NewReporter("json", &buf)
	rep.Start(nil)
	rep.Finish(Summary{})
	if !strings.Contains(buf.String(), `"checks": []`) {
		t.Errorf("an empty run must give an empty array, got %s", buf.String())
	}
}

func TestJUnitReport(t *testing.T) {
	out := render(t, "junit")
	if !strings.HasPrefix(out, "<?xml") {
		t.Errorf("no XML header: %s", out)
	}
	var doc junit.Suites
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Suites[0]
	if doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 || s.Tests != 3 || len(s.Cases) != 3 {
		t.Fatalf("doc = %+v", doc)
	}
	if s.Cases[1].Failure == nil || s.Cases[1].Failure.Message != sampleResults[1].Message || s.Cases[2].Skipped == nil || s.Cases[0].Time != "0.012" {
		t.Errorf("cases = %+v", s.Cases)
	}
}

func TestTAPReport(t *testing.T) {
	want := "TAP version 14\n1..3\n" +
		"ok 1 - health\n# healthy\n" +
		"not ok 2 - security-headers\n  ---\n  message: \"X-Frame-Options is \\\"\\\", want DENY: fix it\"\n  duration_ms: 3\n  ...\n" +
		"ok 3 - tls-certificate # SKIP plain HTTP\n" +
		"# 1 passed, 1 failed, 1 skipped in 1.5s\n"
	if got := render(t, "tap"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTextReport(t *testing.T) {
	out := render(t, "text")
	want := "PASS  health               12ms  healthy\n" +
		"FAIL  security-headers      3ms  X-Frame-Options is \"\", want DENY: fix it\n" +
		"SKIP  tls-certificate       0ms  plain HTTP\n" +
		"\n3 checks in 1.5s: 1 passed, 1 failed, 1 skipped\n"
	if out != want {
		t.Errorf("a non-terminal writer must get plain text:\ngot:\n%q\nwant:\n%q", out, want)
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := NewReporter("yaml", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "text, json, junit, tap") {
		t.Fatalf("err = %v", err)
	}
}

func TestTextReportColour(t *testing.T) {
	tests := []struct {
		name      string
		noColor   string
		allow     bool
		wantColor bool
	}{
		{"forced colour", "", true, true},
		{"NO_COLOR wins", "1", true, false},
		{"colour disabled by the caller", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CLICOLOR_FORCE", "1") // stands in for a terminal
			t.Setenv("NO_COLOR", tt.noColor)
			var buf bytes.Buffer
			rep := NewTextReporter(&buf, tt.allow)
			rep.Start([]string{CheckHealth})
			rep.Result(sampleResults[0])
			if got := strings.Contains(buf.String(), "\x1b["); got != tt.wantColor {
				t.Errorf("coloured = %v, want %v: %q", got, tt.wantColor, buf.String())
			}
			if !strings.Contains(buf.String(), "PASS") {
				t.Error("the text marker must stay, colour or not")
			}
		})
	}
}
