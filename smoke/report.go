package smoke

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/pganalytics/pganalytics/internal/junit"
)

// Reporter renders a run. Start gets the names about to run, Result each finished check in order,
// Finish the totals. Streaming formats (text, TAP) write as results come; JSON and JUnit at Finish.
type Reporter interface {
	Start(names []string) error
	Result(r Result) error
	Finish(s Summary) error
}

// Formats lists the report formats NewReporter accepts.
func Formats() []string { return []string{"text", "json", "junit", "tap"} }

// NewReporter returns the reporter for format. Text is coloured when w is a terminal and NO_COLOR is
// unset.
func NewReporter(format string, w io.Writer) (Reporter, error) {
	switch format {
	case "text", "":
		return NewTextReporter(w, true), nil
	case "json":
		return &jsonReporter{w: w}, nil
	case "junit":
		return &junitReporter{w: w}, nil
	case "tap":
		return &tapReporter{w: w}, nil
	}
	return nil, fmt.Errorf("smoke: unknown output format %q (want one of %s)", format, strings.Join(Formats(), ", "))
}

func durationMS(d time.Duration) int64 { return d.Milliseconds() }

// textReporter prints one aligned line per check and a summary line.
type textReporter struct {
	w     io.Writer
	width int
	pass  lipgloss.Style
	fail  lipgloss.Style
	skip  lipgloss.Style
	dim   lipgloss.Style
}

// NewTextReporter prints human-readable lines. With color false it never colours; with color true it
// colours as far as w supports (lipgloss detection: a terminal, NO_COLOR unset).
func NewTextReporter(w io.Writer, color bool) Reporter {
	r := lipgloss.NewRenderer(w)
	if !color {
		r.SetColorProfile(termenv.Ascii)
	}
	return &textReporter{
		w:    w,
		pass: r.NewStyle().Foreground(lipgloss.Color("2")).Bold(true),
		fail: r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		skip: r.NewStyle().Foreground(lipgloss.Color("3")),
		dim:  r.NewStyle().Faint(true),
	}
}

func (t *textReporter) Start(names []string) error {
	for _, n := range names {
		t.width = max(t.width, len(n))
	}
	return nil
}

func (t *textReporter) Result(r Result) error {
	var marker string
	switch r.Status {
	case StatusPass:
		marker = t.pass.Render("PASS")
	case StatusFail:
		marker = t.fail.Render("FAIL")
	default:
		marker = t.skip.Render("SKIP")
	}
	dur := t.dim.Render(fmt.Sprintf("%6dms", durationMS(r.Duration)))
	_, err := fmt.Fprintf(t.w, "%s  %-*s %s  %s\n", marker, t.width, r.Name, dur, r.Message)
	return err
}

func (t *textReporter) Finish(s Summary) error {
	total := s.Passed + s.Failed + s.Skipped
	line := fmt.Sprintf("%d checks in %s: %d passed, %d failed, %d skipped", total, s.Duration.Round(time.Millisecond), s.Passed, s.Failed, s.Skipped)
	if s.Failed > 0 {
		line = t.fail.Render(line)
	} else {
		line = t.pass.Render(line)
	}
	_, err := fmt.Fprintf(t.w, "\n%s\n", line)
	return err
}

// jsonReport is the documented -o json shape.
type jsonReport struct {
	Checks  []jsonCheck `json:"checks"`
	Summary jsonSummary `json:"summary"`
}

type jsonCheck struct {
	Name       string `json:"name"`
	Status     Status `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Message    string `json:"message"`
}

type jsonSummary struct {
	Passed     int   `json:"passed"`
	Failed     int   `json:"failed"`
	Skipped    int   `json:"skipped"`
	DurationMS int64 `json:"duration_ms"`
}

type jsonReporter struct {
	w      io.Writer
	checks []jsonCheck
}

func (j *jsonReporter) Start([]string) error {
	j.checks = []jsonCheck{}
	return nil
}

func (j *jsonReporter) Result(r Result) error {
	j.checks = append(j.checks, jsonCheck{Name: r.Name, Status: r.Status, DurationMS: durationMS(r.Duration), Message: r.Message})
	return nil
}

func (j *jsonReporter) Finish(s Summary) error {
	enc := json.NewEncoder(j.w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{
		Checks:  j.checks,
		Summary: jsonSummary{Passed: s.Passed, Failed: s.Failed, Skipped: s.Skipped, DurationMS: durationMS(s.Duration)},
	})
}

type junitReporter struct {
	w       io.Writer
	started time.Time
	suite   junit.Suite
}

func (j *junitReporter) Start([]string) error {
	j.started = time.Now()
	j.suite = junit.Suite{Name: "smoke", Timestamp: j.started.UTC().Format("2006-01-02T15:04:05")}
	return nil
}

func (j *junitReporter) Result(r Result) error {
	c := junit.NewCase(r.Name, "pgactl.smoke", r.Duration)
	switch r.Status {
	case StatusFail:
		c.Failure = &junit.Message{Message: r.Message, Type: "fail", Text: r.Message}
	case StatusSkip:
		c.Skipped = &junit.Message{Message: r.Message}
	default:
		c.SystemOut = r.Message
	}
	j.suite.Add(c)
	return nil
}

func (j *junitReporter) Finish(s Summary) error {
	j.suite.Time = junit.Seconds(s.Duration) // the run's wall time: checks may overlap waits
	doc := junit.Suites{Name: "pgactl smoke", Time: junit.Seconds(s.Duration), Suites: []junit.Suite{j.suite}}
	return doc.Write(j.w)
}

// tapReporter writes TAP version 14: the plan first, a YAML block under each failure.
type tapReporter struct {
	w io.Writer
	n int
}

func (t *tapReporter) Start(names []string) error {
	_, err := fmt.Fprintf(t.w, "TAP version 14\n1..%d\n", len(names))
	return err
}

func (t *tapReporter) Result(r Result) error {
	t.n++
	var err error
	switch r.Status {
	case StatusPass:
		_, err = fmt.Fprintf(t.w, "ok %d - %s\n# %s\n", t.n, r.Name, r.Message)
	case StatusSkip:
		_, err = fmt.Fprintf(t.w, "ok %d - %s # SKIP %s\n", t.n, r.Name, r.Message)
	default:
		msg, _ := json.Marshal(r.Message) // a JSON string is a valid YAML scalar
		_, err = fmt.Fprintf(t.w, "not ok %d - %s\n  ---\n  message: %s\n  duration_ms: %d\n  ...\n", t.n, r.Name, msg, durationMS(r.Duration))
	}
	return err
}

func (t *tapReporter) Finish(s Summary) error {
	_, err := fmt.Fprintf(t.w, "# %d passed, %d failed, %d skipped in %s\n", s.Passed, s.Failed, s.Skipped, s.Duration.Round(time.Millisecond))
	return err
}
