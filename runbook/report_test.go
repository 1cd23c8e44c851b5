package runbook

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	code := 3
	st := &RunState{ID: "20261204T100000Z-abcdef", Title: "Plan", Runbook: "(default)", Env: "demo", Target: "staging",
		Operator: "alice", Status: StatusFailed, Error: "staging/deploy: command exited with status 3", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
		Steps: []StepState{
			{Phase: "staging", Step: "review", Title: "Team | review", Kind: KindManual, Status: StatusSucceeded, Attempts: 1, StartedAt: t0, EndedAt: t0.Add(time.Second)},
			{Phase: "staging", Step: "deploy", Title: "Deploy", Kind: KindCommand, Status: StatusFailed, Attempts: 2, StartedAt: t0, EndedAt: t0.Add(2 * time.Second), ExitCode: &code, Error: "command exited with status 3"},
			{Phase: "production", Step: "migrate", Title: "Migrate", Kind: KindCommand, Status: StatusPending},
		}}
	audit := []AuditRecord{
		{Event: AuditConfirmation, Who: "bob", Phase: "staging", Step: "review", Prompt: "manual", Decision: "done"},
		{Event: AuditStep, Who: "alice", Phase: "staging", Step: "deploy", Output: "one\ntwo\n```\n"},
		{Event: AuditStep, Who: "carol", Phase: "staging", Step: "deploy", Output: "```\n" + strings.Repeat("line\n", 30) + "last"},
	}
	r := BuildReport(st, audit)
	if got := r.Steps[1].RanBy; len(got) != 2 || got[0] != "alice" || got[1] != "carol" {
		t.Errorf("ran by %v", got)
	}
	if got := r.Steps[0].ConfirmedBy; len(got) != 1 || got[0] != "bob: done (manual)" {
		t.Errorf("confirmed by %v", got)
	}
	if n := strings.Count(r.Steps[1].Output, "\n") + 1; n != reportOutputLines || !strings.HasSuffix(r.Steps[1].Output, "last") {
		t.Errorf("output excerpt has %d lines, want the last %d: %q", n, reportOutputLines, r.Steps[1].Output)
	}

	t.Run("junit", func(t *testing.T) {
		var b bytes.Buffer
		if err := r.WriteJUnit(&b); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Suites   []struct {
				Name  string `xml:"name,attr"`
				Cases []struct {
					Name    string    `xml:"name,attr"`
					Failure *struct{} `xml:"failure"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		if got.Tests != 3 || got.Failures != 1 || got.Skipped != 1 || len(got.Suites) != 2 || got.Suites[0].Cases[1].Failure == nil {
			t.Fatalf("junit %+v\n%s", got, b.String())
		}
	})
	t.Run("markdown", func(t *testing.T) {
		var b bytes.Buffer
		if err := r.WriteMarkdown(&b); err != nil {
			t.Fatal(err)
		}
		md := b.String()
		for _, want := range []string{
			"# Run 20261204T100000Z-abcdef: Plan",
			"| status | **failed** |",
			`Team \| review`,
			"| `staging/deploy` Deploy | command | failed | 2 | 2s | alice, carol |",
			"3 steps: 1 succeeded, 1 failed, 0 skipped, 1 pending.",
			"**Error:** command exited with status 3",
		} {
			if !strings.Contains(md, want) {
				t.Errorf("markdown lacks %q:\n%s", want, md)
			}
		}
		if strings.Contains(r.Steps[1].Output, "```") && !strings.Contains(md, "````\n") {
			t.Errorf("output holding ``` is not fenced by a longer fence:\n%s", md)
		}
	})
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Run != r.Run || len(back.Steps) != 3 {
			t.Fatalf("json round trip: %v %+v", err, back)
		}
	})
}
