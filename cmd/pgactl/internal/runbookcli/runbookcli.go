// Package runbookcli is how pgactl's runbook commands talk to a person: the terminal confirmer
// and the printers of plans, events, steps, audit records and run statuses.
package runbookcli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

// Confirmer asks on the terminal (or reads answers piped to stdin); with --yes it answers itself.
type Confirmer struct {
	In          io.Reader
	Out         io.Writer
	Yes         bool // confirm manual steps, stop at the first failure
	Destructive bool // with Yes: run destructive steps too
	lines       chan string
}

// Confirm answers a prompt.
func (c *Confirmer) Confirm(ctx context.Context, p runbook.Prompt) (runbook.Reply, error) {
	s := p.Step
	if c.Yes {
		switch p.Kind {
		case runbook.PromptManual:
			fmt.Fprintf(c.Out, "    manual step confirmed by --yes\n")
			return runbook.Reply{Decision: runbook.Proceed}, nil
		case runbook.PromptDestructive:
			if c.Destructive {
				fmt.Fprintf(c.Out, "    destructive step confirmed by --confirm-destructive\n")
				return runbook.Reply{Decision: runbook.Proceed, Typed: s.ID}, nil
			}
			return runbook.Reply{Decision: runbook.Proceed}, nil
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	}
	switch p.Kind {
	case runbook.PromptManual:
		if strings.TrimSpace(s.Description) != "" {
			for _, l := range strings.Split(strings.TrimSpace(s.Description), "\n") {
				fmt.Fprintf(c.Out, "    %s\n", l)
			}
		}
		for _, item := range s.Checklist {
			fmt.Fprintf(c.Out, "    [ ] %s\n", item)
		}
		return c.choose(ctx, "    Done? [y]es, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"y": runbook.Proceed, "yes": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	case runbook.PromptDestructive:
		fmt.Fprintf(c.Out, "\n%s/%s  %s is DESTRUCTIVE.\n", p.Phase, s.ID, s.Title)
		for range 3 {
			fmt.Fprintf(c.Out, "    Type the step id %q to run it, [s]kip, [a]bort: ", s.ID)
			line, err := c.readLine(ctx)
			if err != nil {
				return runbook.Reply{Decision: runbook.Abort}, err
			}
			switch line {
			case s.ID:
				return runbook.Reply{Decision: runbook.Proceed, Typed: line}, nil
			case "s", "skip":
				return runbook.Reply{Decision: runbook.Skip}, nil
			case "a", "abort":
				return runbook.Reply{Decision: runbook.Abort}, nil
			}
			fmt.Fprintf(c.Out, "    %q is not the step id\n", line)
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	case runbook.PromptFailed:
		return c.choose(ctx, "    Step failed. [r]etry, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"r": runbook.Proceed, "retry": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	}
	return runbook.Reply{Decision: runbook.Abort}, nil
}

func (c *Confirmer) choose(ctx context.Context, question string, answers map[string]runbook.Decision) (runbook.Reply, error) {
	for {
		fmt.Fprint(c.Out, question)
		line, err := c.readLine(ctx)
		if err != nil {
			return runbook.Reply{Decision: runbook.Abort}, err
		}
		if d, ok := answers[strings.ToLower(line)]; ok {
			return runbook.Reply{Decision: d}, nil
		}
	}
}

// readLine reads one answer; it gives up when ctx is done (Ctrl-C) and treats end of input as abort.
func (c *Confirmer) readLine(ctx context.Context) (string, error) {
	if c.lines == nil {
		c.lines = make(chan string)
		go func() {
			sc := bufio.NewScanner(c.In)
			for sc.Scan() {
				c.lines <- strings.TrimSpace(sc.Text())
			}
			close(c.lines)
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.Out)
		return "", ctx.Err()
	case line, ok := <-c.lines:
		if !ok {
			fmt.Fprintln(c.Out, "(end of input: abort)")
			return "a", nil
		}
		return line, nil
	}
}

// PrintPlan is --dry-run: every step as it would run; configuration problems exit 2.
func PrintPlan(ctx context.Context, w io.Writer, eng *runbook.Engine, env *runbook.Environment, t runbook.Target) error {
	plan, err := eng.Plan(ctx, t)
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	fmt.Fprintf(w, "dry run of %s in environment %s: nothing is executed\n", t, env.Name)
	if len(env.Commands) > 0 {
		names := make([]string, 0, len(env.Commands))
		for n := range env.Commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "command steps may call the environment's commands: %s\n", strings.Join(names, ", "))
	}
	var unsimulated, broken []string
	for i, ps := range plan {
		fmt.Fprintf(w, "\n[%d/%d] %s/%s  %s (%s)\n", i+1, len(plan), ps.Phase, ps.Step.ID, ps.Step.Title, ps.Step.Kind)
		for _, l := range ps.Would {
			fmt.Fprintf(w, "    %s\n", l)
		}
		ref := ps.Phase + "/" + ps.Step.ID
		if ps.CannotSimulate != "" {
			unsimulated = append(unsimulated, ref+": "+ps.CannotSimulate)
		}
		if ps.Err != nil {
			for _, l := range strings.Split(ps.Err.Error(), "\n") {
				fmt.Fprintf(w, "    PROBLEM: %s\n", l)
			}
			broken = append(broken, ref)
		}
	}
	if len(unsimulated) > 0 {
		fmt.Fprintf(w, "\ncannot simulate %d steps:\n", len(unsimulated))
		for _, u := range unsimulated {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	if len(broken) > 0 {
		return exitcode.With(exitcode.Usage, fmt.Errorf("%d steps cannot run as configured: %s", len(broken), strings.Join(broken, ", ")))
	}
	fmt.Fprintf(w, "\n%d steps ready\n", len(plan))
	return nil
}

// PrintEvent is the CLI's rendering of the engine's events.
func PrintEvent(w io.Writer, ev runbook.Event) {
	switch ev.Kind {
	case runbook.EventRunStarted:
		fmt.Fprintf(w, "run %s: %d steps\n", ev.RunID, ev.Total)
	case runbook.EventStepStarted:
		kind := string(ev.Step.Kind)
		if ev.Step.Kind == runbook.KindCheck {
			kind += " " + string(ev.Step.Check)
		}
		if ev.Attempt > 1 {
			kind += fmt.Sprintf(", attempt %d", ev.Attempt)
		}
		fmt.Fprintf(w, "\n[%d/%d] %s/%s  %s (%s)\n", ev.Index, ev.Total, ev.Phase, ev.Step.ID, ev.Step.Title, kind)
	case runbook.EventOutput:
		fmt.Fprintf(w, "    | %s\n", ev.Line)
	case runbook.EventApproval:
		fmt.Fprintf(w, "\n[%d/%d] %s/%s  %s\n    %s\n", ev.Index, ev.Total, ev.Phase, ev.Step.ID, ev.Step.Title, ev.Line)
	case runbook.EventStepFinished:
		switch ev.Status {
		case runbook.StatusSucceeded:
			fmt.Fprintf(w, "    ok (%s)\n", ev.Duration.Round(time.Millisecond))
		case runbook.StatusSkipped:
			fmt.Fprintln(w, "    skipped")
		default:
			fmt.Fprintf(w, "    %s: %v\n", strings.ToUpper(string(ev.Status)), ev.Err)
		}
	}
}

// PrintStep writes one step the way an operator reads it.
func PrintStep(w io.Writer, phase string, s *runbook.Step) {
	fmt.Fprintf(w, "%s/%s  %s\n", phase, s.ID, s.Title)
	kind := string(s.Kind)
	if s.Kind == runbook.KindCheck {
		kind += " " + string(s.Check)
	}
	if s.Destructive {
		kind += ", DESTRUCTIVE (asks to type its id; approved by a second person)"
	}
	if len(s.Approve) > 0 {
		kind += ", approved by " + strings.Join(s.Approve, " and ")
	}
	if t := s.EffectiveTimeout(); t > 0 {
		kind += ", timeout " + t.String()
	}
	if s.Retries > 0 {
		kind += fmt.Sprintf(", %d retries", s.Retries)
	}
	fmt.Fprintf(w, "  kind: %s\n", kind)
	indent := func(label, text string) {
		if strings.TrimSpace(text) == "" {
			return
		}
		fmt.Fprintf(w, "  %s:\n", label)
		for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	indent("about", s.Description)
	for _, item := range s.Checklist {
		fmt.Fprintf(w, "    [ ] %s\n", item)
	}
	indent("run", s.Run)
	if s.SQL != "" {
		db := s.Database
		if db == "" {
			db = runbook.DefaultDatabase
		}
		indent("sql on "+db, s.SQL)
		if len(s.Params) > 0 {
			fmt.Fprintf(w, "  params: %s\n", strings.Join(s.Params, ", "))
		}
	}
	if x := s.Expect; x != nil {
		if x.Rows != nil {
			fmt.Fprintf(w, "  expect rows %s\n", x.Rows)
		}
		if x.Value != nil {
			fmt.Fprintf(w, "  expect value %s\n", x.Value)
		}
		if x.Equals != nil {
			b, _ := json.Marshal(x.Equals)
			fmt.Fprintf(w, "  expect rows equal %s\n", b)
		}
	}
	for _, kv := range [][2]string{{"url", s.URL}, {"database", s.Database}, {"role", s.Role}, {"name", s.Name},
		{"hostname", s.Hostname}, {"username", s.Username}, {"secret", s.Secret}, {"password", s.Password}} {
		if kv[1] != "" && !(kv[0] == "database" && s.SQL != "") {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
	}
	if len(s.Headers) > 0 {
		fmt.Fprintf(w, "  headers: %s\n", strings.Join(s.Headers, "; "))
	}
}

func PrintAuditRecord(w io.Writer, r runbook.AuditRecord) {
	at := r.Time.Local().Format(time.DateTime)
	switch r.Event {
	case runbook.AuditRunStarted, runbook.AuditRunResumed:
		fmt.Fprintf(w, "%s  %s  %s: %s, environment %s, runbook %s\n", at, r.Who, r.Event, r.Target, r.Env, r.Runbook)
	case runbook.AuditConfirmation:
		fmt.Fprintf(w, "%s  %s  %s/%s: %s prompt: %s\n", at, r.Who, r.Phase, r.Step, r.Prompt, r.Decision)
	case runbook.AuditStep:
		exit := ""
		if r.ExitCode != nil {
			exit = fmt.Sprintf(", exit %d", *r.ExitCode)
		}
		fmt.Fprintf(w, "%s  %s  %s/%s (%s, attempt %d): %s%s, %s\n", at, r.Who, r.Phase, r.Step, r.Kind, r.Attempt,
			r.Status, exit, r.End.Sub(r.Start).Round(time.Millisecond))
		if r.Command != "" {
			for _, l := range strings.Split(strings.TrimRight(r.Command, "\n"), "\n") {
				fmt.Fprintf(w, "    $ %s\n", l)
			}
		}
		if r.Output != "" {
			for _, l := range strings.Split(r.Output, "\n") {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
	case runbook.AuditRunFinished:
		fmt.Fprintf(w, "%s  %s  run finished: %s", at, r.Who, r.Status)
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintf(w, "%s  %s  %s\n", at, r.Who, r.Event)
	}
}

// RunStatus tells a live run from one whose process died (its state still says running).
func RunStatus(st *runbook.RunState) string {
	if st.Status == runbook.StatusRunning && st.Lease == nil {
		return "interrupted (the process running it stopped)"
	}
	return string(st.Status)
}

// Executor says who executes a run: the user, where, and until when the lease holds.
func Executor(l *api.RunbookLease) string {
	s := l.User
	if l.Holder != "" && l.Holder != l.User {
		s += " — " + l.Holder
	}
	if !l.ExpiresAt.IsZero() {
		s += ", lease until " + l.ExpiresAt.Local().Format(time.TimeOnly)
	}
	return s
}

// ApprovalText is a step's approval for a table: whom it waits for, or who decided.
func ApprovalText(s runbook.StepState) string {
	if len(s.Approve) == 0 && !s.Destructive {
		return ""
	}
	var by []string
	for _, a := range s.Approvals {
		if a.Round == s.ApprovalRound && a.Decision == s.Approval {
			by = append(by, a.User)
		}
	}
	switch s.Approval {
	case api.ApprovalApproved, api.ApprovalRejected:
		return s.Approval + " by " + strings.Join(by, ", ")
	case "bypassed":
		return "bypassed (break glass)"
	}
	need := "another operator"
	if len(s.Approve) > 0 {
		need = strings.Join(s.Approve, ", ")
	}
	if s.Status == runbook.StatusAwaitingApproval {
		return "waiting for " + need
	}
	return "needs " + need
}
