package smoke

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
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

// JUnit XML as CI systems (Jenkins, GitLab, GitHub test reporters) read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

type junitReporter struct {
	w       io.Writer
	started time.Time
	cases   []junitCase
}

func (j *junitReporter) Start([]string) error {
	j.started = time.Now()
	return nil
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func (j *junitReporter) Result(r Result) error {
	c := junitCase{Name: r.Name, Classname: "pgactl.smoke", Time: seconds(r.Duration)}
	switch r.Status {
	case StatusFail:
		c.Failure = &junitMessage{Message: r.Message, Type: "fail", Text: r.Message}
	case StatusSkip:
		c.Skipped = &junitMessage{Message: r.Message}
	default:
		c.SystemOut = r.Message
	}
	j.cases = append(j.cases, c)
	return nil
}

func (j *junitReporter) Finish(s Summary) error {
	total := s.Passed + s.Failed + s.Skipped
	doc := junitSuites{
		Name: "pgactl smoke", Tests: total, Failures: s.Failed, Skipped: s.Skipped, Time: seconds(s.Duration),
		Suites: []junitSuite{{
			Name: "smoke", Tests: total, Failures: s.Failed, Skipped: s.Skipped, Time: seconds(s.Duration),
			Timestamp: j.started.UTC().Format("2006-01-02T15:04:05"), Cases: j.cases,
		}},
	}
	if _, err := io.WriteString(j.w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(j.w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(j.w, "\n")
	return err
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
