package runbook

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/junit"
)

// reportOutputLines is how many of a step's last output lines a report keeps.
const reportOutputLines = 20

// Report is a run as a document: the Phase 4D retrospective and a CI artefact. It is built from
// the run's state and its audit log, which are redacted already: a report holds no secret.
type Report struct {
	Run        string         `json:"run"`
	Title      string         `json:"title"`
	Runbook    string         `json:"runbook"`
	Env        string         `json:"env"`
	Target     string         `json:"target"`
	StartedBy  string         `json:"started_by"`
	Status     Status         `json:"status"`
	Error      string         `json:"error,omitempty"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
	Steps      []ReportedStep `json:"steps"`
}

// ReportedStep is one step of a report.
type ReportedStep struct {
	Phase       string    `json:"phase"`
	Step        string    `json:"step"`
	Title       string    `json:"title"`
	Kind        Kind      `json:"kind"`
	Status      Status    `json:"status"`
	Attempts    int       `json:"attempts"`
	RanBy       []string  `json:"ran_by,omitempty"`       // who executed its attempts
	ConfirmedBy []string  `json:"confirmed_by,omitempty"` // "who: decision (prompt)" of each confirmation
	Approvals   []string  `json:"approvals,omitempty"`    // "approved by bob (database-lead): comment", as the API recorded them
	StartedAt   time.Time `json:"started_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	Seconds     float64   `json:"seconds"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	Error       string    `json:"error,omitempty"`
	Output      string    `json:"output,omitempty"` // the last attempt's last lines
}

// BuildReport joins a run's state with its audit log.
func BuildReport(st *RunState, audit []AuditRecord) Report {
	r := Report{Run: st.ID, Title: st.Title, Runbook: st.Runbook, Env: st.Env, Target: st.Target,
		StartedBy: st.Operator, Status: st.Status, Error: st.Error, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt}
	index := map[string]int{}
	for i, s := range st.Steps {
		index[s.Phase+"/"+s.Step] = i
		rs := ReportedStep{Phase: s.Phase, Step: s.Step, Title: s.Title, Kind: s.Kind, Status: s.Status,
			Attempts: s.Attempts, StartedAt: s.StartedAt, EndedAt: s.EndedAt, ExitCode: s.ExitCode, Error: s.Error}
		if !s.StartedAt.IsZero() && !s.EndedAt.IsZero() {
			rs.Seconds = s.EndedAt.Sub(s.StartedAt).Seconds()
		}
		for _, a := range s.Approvals {
			line := fmt.Sprintf("%s by %s", a.Decision, a.User)
			if len(a.Roles) > 0 {
				line += " (" + strings.Join(a.Roles, ", ") + ")"
			}
			line += " at " + a.At.UTC().Format(time.RFC3339)
			if a.Comment != "" {
				line += ": " + a.Comment
			}
			rs.Approvals = append(rs.Approvals, line)
		}
		r.Steps = append(r.Steps, rs)
	}
	for _, a := range audit {
		i, ok := index[a.Phase+"/"+a.Step]
		if !ok {
			continue
		}
		s := &r.Steps[i]
		switch a.Event {
		case AuditStep:
			if !slices.Contains(s.RanBy, a.Who) {
				s.RanBy = append(s.RanBy, a.Who)
			}
			s.Output = lastLines(a.Output, reportOutputLines)
		case AuditConfirmation:
			s.ConfirmedBy = append(s.ConfirmedBy, fmt.Sprintf("%s: %s (%s)", a.Who, a.Decision, a.Prompt))
		case AuditApproval:
			if a.Decision == "bypassed (break glass)" {
				s.Approvals = append(s.Approvals, fmt.Sprintf("bypassed by %s (break glass): %s", a.Who, a.Output))
			}
		}
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteJSON writes the report as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the report as a Markdown document: a summary, a table of the steps, then
// the failed steps' errors and every step's output excerpt.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Run %s: %s\n\n", r.Run, mdEscape(r.Title))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| target | `%s` |\n| environment | %s |\n| runbook | %s |\n| started by | %s |\n",
		r.Target, mdEscape(r.Env), mdEscape(r.Runbook), mdEscape(r.StartedBy))
	fmt.Fprintf(&b, "| started | %s |\n", r.StartedAt.UTC().Format(time.RFC3339))
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(&b, "| finished | %s (%s) |\n", r.FinishedAt.UTC().Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
	}
	fmt.Fprintf(&b, "| status | **%s** |\n", r.Status)
	if r.Error != "" {
		fmt.Fprintf(&b, "| error | %s |\n", mdEscape(r.Error))
	}
	counts := map[Status]int{}
	for _, s := range r.Steps {
		counts[s.Status]++
	}
	fmt.Fprintf(&b, "\n%d steps: %d succeeded, %d failed, %d skipped, %d pending.\n\n", len(r.Steps),
		counts[StatusSucceeded], counts[StatusFailed], counts[StatusSkipped], counts[StatusPending])
	b.WriteString("| step | kind | status | attempts | duration | ran by | confirmed by | approvals |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| `%s/%s` %s | %s | %s | %d | %s | %s | %s | %s |\n", s.Phase, s.Step, mdEscape(s.Title), s.Kind, s.Status,
			s.Attempts, fmtSeconds(s.Seconds), mdEscape(strings.Join(s.RanBy, ", ")), mdEscape(strings.Join(s.ConfirmedBy, "; ")),
			mdEscape(strings.Join(s.Approvals, "; ")))
	}
	for _, s := range r.Steps {
		if s.Error == "" && s.Output == "" {
			continue
		}
		fmt.Fprintf(&b, "\n## %s/%s — %s\n\n", s.Phase, s.Step, mdEscape(s.Title))
		if s.Error != "" {
			fmt.Fprintf(&b, "**Error:** %s\n\n", mdEscape(s.Error))
		}
		if s.Output != "" {
			fence := "```"
			for strings.Contains(s.Output, fence) {
				fence += "`"
			}
			fmt.Fprintf(&b, "%s\n%s\n%s\n", fence, s.Output, fence)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtSeconds(s float64) string {
	if s == 0 {
		return "—"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// mdEscape keeps a value on one table cell: pipes escaped, line breaks as spaces.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// WriteJUnit writes the report as JUnit XML, for CI systems: one suite per phase, one test case
// per step; a failed, interrupted or crashed step is a failure, a skipped or pending one skipped,
// the output excerpt its system-out.
func (r Report) WriteJUnit(w io.Writer) error {
	doc := junit.Suites{Name: "pgactl runbook " + r.Run + " " + r.Target}
	suites := map[string]int{}
	for _, s := range r.Steps {
		i, ok := suites[s.Phase]
		if !ok {
			i = len(doc.Suites)
			suites[s.Phase] = i
			doc.Suites = append(doc.Suites, junit.Suite{Name: s.Phase})
			if !s.StartedAt.IsZero() {
				doc.Suites[i].Timestamp = s.StartedAt.UTC().Format("2006-01-02T15:04:05")
			}
		}
		c := junit.NewCase(s.Step+": "+s.Title, "runbook."+s.Phase, time.Duration(s.Seconds*float64(time.Second)))
		c.SystemOut = s.Output
		switch s.Status {
		case StatusSucceeded:
		case StatusSkipped, StatusPending:
			c.Skipped = &junit.Message{Message: string(s.Status)}
		default: // failed, interrupted, running (a crashed run)
			c.Failure = &junit.Message{Message: string(s.Status) + ": " + s.Error, Text: s.Error}
		}
		doc.Suites[i].Add(c)
	}
	return doc.Write(w)
}
