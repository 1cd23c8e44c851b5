package shared

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/runbook"
)

// TestToAPIKeepsWithinTheAPIsBounds: a long error or title is cut (on a rune boundary), not sent
// to be refused, which would stop the run.
func TestToAPIKeepsWithinTheAPIsBounds(t *testing.T) {
	long := strings.Repeat("é", 20000) // 40,000 bytes
	st := &runbook.RunState{ID: "20260101T000000Z-abcdef", Error: long, Steps: []runbook.StepState{
		{Phase: "p", Step: "s", Title: strings.Repeat("t", 300), Error: long, Status: runbook.StatusFailed}}}
	run, err := ToAPI(st)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]struct {
		s string
		n int
	}{"run error": {run.Error, maxErrorBytes}, "step error": {run.Steps[0].Error, maxErrorBytes}, "title": {run.Steps[0].Title, maxTitleBytes}} {
		if len(v.s) > v.n || !utf8.ValidString(v.s) || !strings.HasSuffix(v.s, "…") {
			t.Errorf("%s: %d bytes, valid %v", name, len(v.s), utf8.ValidString(v.s))
		}
	}
	back, err := FromAPI(run)
	if err != nil || back.ID != st.ID || back.Steps[0].Status != runbook.StatusFailed {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
