package runbook

import (
	"fmt"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Column widths of the checklist.
const (
	idW   = 20
	kindW = 7
	durW  = 8
	// titleMax keeps kind and duration near the title on wide terminals.
	titleMax = 60
)

// marker is a step status as a word (colour aside): pending steps are a dot, like an empty box.
func marker(th theme.Theme, st *stepState, waiting bool) string {
	switch {
	case waiting:
		return th.MarkerText(theme.LevelWarn, "WAIT")
	}
	switch st.status {
	case runbook.StatusRunning:
		if !st.live {
			return th.MarkerText(theme.LevelWarn, "STOP") // a crashed run left it running
		}
		return th.Accent.Render(widget.Fit("RUN", theme.MarkerWidth))
	case runbook.StatusSucceeded:
		return th.MarkerText(theme.LevelOK, "DONE")
	case runbook.StatusFailed:
		return th.MarkerText(theme.LevelCrit, "FAIL")
	case runbook.StatusSkipped:
		return th.MarkerText(theme.LevelNone, "SKIP")
	case runbook.StatusInterrupted, runbook.StatusAborted:
		return th.MarkerText(theme.LevelWarn, "STOP")
	case runbook.StatusAwaitingApproval:
		return th.MarkerText(theme.LevelWarn, "APPR")
	}
	return th.Muted.Render(widget.Fit("  ·", theme.MarkerWidth))
}

// paneHeight is the output pane's share of the view.
func (m *Model) paneHeight() int {
	if m.height >= 18 {
		return max(6, m.height*2/5)
	}
	return max(3, m.height/3)
}

// View renders the status line, the checklist, the output pane and the prompt.
func (m *Model) View() string {
	th := m.opts.Theme
	lines := m.statusLines()
	if m.opts.Runner == nil {
		lines = append(lines, "")
		for _, l := range widget.Wrap("No runbook: "+m.opts.Unavailable, m.width, 6) {
			lines = append(lines, th.Level(theme.LevelCrit).Render(l))
		}
		return widget.Lines(lines, m.width, m.height)
	}
	if m.loadErr != nil {
		lines = append(lines, th.Level(theme.LevelWarn).Render("Past runs could not be read: "+m.loadErr.Error()))
	}
	footer := m.footer()
	pane := m.paneHeight()
	listH := max(1, m.height-len(lines)-pane-len(footer))
	start, end := m.cursor.Visible(listH, len(m.rows))
	for i := start; i < end; i++ {
		lines = append(lines, m.rowLine(m.rows[i], i == m.cursor.Index))
	}
	for len(lines) < m.height-pane-len(footer) {
		lines = append(lines, "")
	}
	paneLines := m.paneLines(pane)
	for len(paneLines) < pane {
		paneLines = append(paneLines, "")
	}
	lines = append(lines, paneLines...)
	return widget.Lines(append(lines, footer...), m.width, m.height)
}

// statusLines are the runbook and environment, then the run in progress or the last one that can
// be resumed.
func (m *Model) statusLines() []string {
	th := m.opts.Theme
	sep := th.Muted.Render(" · ")
	if m.opts.Runner == nil {
		return []string{th.Bold.Render(m.opts.Title)}
	}
	rb := m.opts.Runner.Runbook()
	n := 0
	for _, rw := range m.rows {
		if rw.step != nil {
			n++
		}
	}
	parts := []string{th.Bold.Render(rb.Title), "env " + m.opts.Runner.Env(), fmt.Sprintf("%d steps", n)}
	if !m.canRun {
		parts = append(parts, th.Muted.Render("read-only"))
	}
	lines := []string{strings.Join(parts, sep)}
	if l := m.watchLine(); l != "" {
		lines = append(lines, l)
	}
	if l := m.remoteLine(); l != "" {
		lines = append(lines, l)
	}
	switch {
	case m.run != nil:
		id := m.run.id
		if id == "" {
			id = "starting"
		}
		lines = append(lines, th.Accent.Render("▶ running "+m.run.target.String()+" · run "+id))
	default:
		if st := m.selected(); st != nil {
			if last := m.lastRun[st.phase]; last != nil {
				lines = append(lines, th.Level(theme.LevelWarn).Render(fmt.Sprintf("↺ last run %s %s%s: c resumes",
					last.ID, last.Status, stoppedAt(last))))
			}
		}
	}
	return lines
}

// stoppedAt names the step a run stopped at (" at phase/step"), or "".
func stoppedAt(st *runbook.RunState) string {
	for _, s := range st.Steps {
		if s.Status != runbook.StatusSucceeded && s.Status != runbook.StatusSkipped {
			return " at " + s.Phase + "/" + s.Step
		}
	}
	return ""
}

func (m *Model) rowLine(rw row, selected bool) string {
	th := m.opts.Theme
	if rw.step == nil {
		p := rw.phase
		done, failed, total := 0, 0, len(p.Steps)
		for i := range p.Steps {
			switch m.steps[p.ID+"/"+p.Steps[i].ID].status {
			case runbook.StatusSucceeded, runbook.StatusSkipped:
				done++
			case runbook.StatusFailed:
				failed++
			}
		}
		progress := fmt.Sprintf("%d/%d done", done, total)
		if failed > 0 {
			progress += th.Level(theme.LevelCrit).Render(fmt.Sprintf(" · %d failed", failed))
		}
		return widget.Fit(th.Accent.Render("▌ "+p.ID)+th.Bold.Render("  "+p.Title)+th.Muted.Render("  "+progress), m.width)
	}
	if selected {
		th = m.plain
	}
	st := rw.step
	waiting := m.run != nil && m.run.prompt != nil && m.run.current == st
	flag := " "
	if st.step.Destructive {
		flag = th.Level(theme.LevelCrit).Render("!")
	}
	titleW := max(8, min(titleMax, m.width-(2+theme.MarkerWidth+1+2+idW+1+1+kindW+1+durW)))
	line := widget.Gutter(selected) + marker(th, st, waiting) + " " + flag + " " +
		widget.Fit(th.Bold.Render(st.step.ID), idW) + " " + widget.Fit(st.step.Title, titleW) + " " +
		th.Muted.Render(widget.Fit(string(st.step.Kind), kindW)) + " " + widget.FitLeft(m.duration(st, waiting), durW)
	line = widget.Fit(line, m.width)
	if selected {
		line = m.opts.Theme.Selected.Render(line)
	}
	return line
}

// duration is a finished step's time, a running one's elapsed time.
func (m *Model) duration(st *stepState, waiting bool) string {
	switch {
	case waiting:
		return "waiting"
	case st.status == runbook.StatusRunning && st.live && !st.started.IsZero():
		return widget.Seconds(m.opts.Now().Sub(st.started).Seconds()) + "…"
	case st.duration > 0:
		return widget.Seconds(st.duration.Seconds())
	case st.status == runbook.StatusPending:
		return ""
	}
	return "-"
}

// paneLines is the selected step's output (the running step follows the cursor), or its description.
func (m *Model) paneLines(h int) []string {
	th := m.opts.Theme
	st := m.selected()
	if st == nil || h <= 0 {
		return nil
	}
	head := "─ " + st.ref()
	if st.attempts > 0 {
		head += fmt.Sprintf(" · attempt %d", st.attempts)
	}
	head += " · " + string(st.status) + " "
	head = th.Rule.Render(head + strings.Repeat("─", max(0, m.width-widget.Width(head))))
	var body []string
	if st.err != "" {
		body = append(body, th.Level(theme.LevelCrit).Render("error: "+st.err))
	}
	out := st.output.Values()
	if len(out) == 0 {
		body = append(body, m.describe(st)...)
	} else {
		body = append(body, out...)
	}
	room := h - 1
	end := max(0, len(body)-m.outputScroll)
	if m.outputScroll > 0 && end < room {
		end = min(len(body), room)
		m.outputScroll = len(body) - end
	}
	begin := max(0, end-room)
	return append([]string{head}, body[begin:end]...)
}

// describe is what a step does, shown before it has output.
func (m *Model) describe(st *stepState) []string {
	th := m.opts.Theme
	s := st.step
	var lines []string
	if s.Description != "" {
		lines = append(lines, strings.Split(strings.TrimSpace(s.Description), "\n")...)
	}
	for _, c := range s.Checklist {
		lines = append(lines, "  [ ] "+c)
	}
	switch s.Kind {
	case runbook.KindCommand:
		for _, l := range strings.Split(strings.TrimSpace(s.Run), "\n") {
			lines = append(lines, th.Muted.Render("  $ "+l))
		}
	case runbook.KindSQL:
		for _, l := range strings.Split(strings.TrimSpace(s.SQL), "\n") {
			lines = append(lines, th.Muted.Render("  "+l))
		}
	case runbook.KindCheck:
		lines = append(lines, th.Muted.Render("  check "+string(s.Check)))
	case runbook.KindRolling:
		lines = append(lines, th.Muted.Render("  one at a time: "+s.Servers))
		for _, l := range strings.Split(strings.TrimSpace(s.Run), "\n") {
			lines = append(lines, th.Muted.Render("  $ "+l))
		}
	}
	if s.Destructive {
		lines = append(lines, th.Level(theme.LevelCrit).Render("  destructive: asks you to type its id before it runs"))
	}
	if t := s.EffectiveTimeout(); t > 0 {
		lines = append(lines, th.Muted.Render("  timeout "+t.Round(time.Second).String()))
	}
	return lines
}

// footer is the open prompt, else the last notice.
func (m *Model) footer() []string {
	th := m.opts.Theme
	if m.run != nil && m.run.prompt != nil {
		p := m.run.prompt
		ref := p.Phase + "/" + p.Step.ID
		switch p.Kind {
		case runbook.PromptManual:
			return []string{th.Prompt.Render("Manual step " + ref + ": " + p.Step.Title),
				th.Muted.Render("Do it, then press y when done · s skips it · a aborts the run")}
		case runbook.PromptDestructive:
			return []string{th.Level(theme.LevelCrit).Render("DESTRUCTIVE step " + ref + ": " + p.Step.Title),
				th.Muted.Render("Type " + p.Step.ID + " and press enter to run it · esc aborts the run"), m.run.typed.View()}
		case runbook.PromptFailed:
			msg := "Step " + ref + " failed"
			if p.Err != nil {
				msg += ": " + p.Err.Error()
			}
			return []string{th.Level(theme.LevelCrit).Render(msg), th.Muted.Render("y retries · s skips it · a aborts the run")}
		}
	}
	if m.notice != "" {
		return []string{th.Notice.Render(m.notice)}
	}
	return nil
}
