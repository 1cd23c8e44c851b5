package topology

import (
	"fmt"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// wideFrom is the width from which the event feed goes beside the tree instead of below it.
const wideFrom = 120

// View renders the status line, then the cluster trees and the event feed.
func (m *Model) View() string {
	th := m.opts.Theme
	lines := []string{m.statusLine()}
	if m.asking {
		lines = append(lines, th.Prompt.Render("Go to (2026-02-27T15:04:05Z, 15:04 or 10m ago): ")+m.prompt.View()+
			th.Muted.Render("  enter goes · esc cancels"))
	}
	if m.notice != "" {
		lines = append(lines, th.Notice.Render(m.notice))
	}
	f := m.shown()
	body := max(1, m.height-len(lines))
	switch {
	case !m.loaded && m.at.IsZero():
		if err := m.poll.Err(); err != nil {
			lines = append(lines, th.Level(theme.LevelCrit).Render("Cannot load the topology: "+err.Error()))
		} else {
			lines = append(lines, th.Muted.Render("Loading the topology…"))
		}
	case m.width >= wideFrom:
		treeW := m.width * 3 / 5
		tree := m.treeLines(f, treeW-1)
		feed := m.feedLines(f, m.width-treeW-2, body)
		tree = scroll(tree, m.offset, body)
		for i := range body {
			l, r := "", ""
			if i < len(tree) {
				l = tree[i]
			}
			if i < len(feed) {
				r = feed[i]
			}
			lines = append(lines, widget.Fit(l, treeW)+th.Rule.Render("│ ")+r)
		}
	default:
		feedH := min(max(body/3, 4), 8)
		tree := scroll(m.treeLines(f, m.width), m.offset, body-feedH)
		lines = append(lines, tree...)
		for len(lines) < m.height-feedH {
			lines = append(lines, "")
		}
		lines = append(lines, m.feedLines(f, m.width, feedH)...)
	}
	return widget.Lines(lines, m.width, m.height)
}

func scroll(lines []string, offset, n int) []string {
	offset = min(offset, max(0, len(lines)-n))
	lines = lines[offset:]
	return lines[:min(len(lines), n)]
}

// shown is the frame on screen: the past one while travelling, else the live one.
func (m *Model) shown() frame {
	if m.at.IsZero() {
		return m.live
	}
	return m.past
}

func (m *Model) statusLine() string {
	th := m.opts.Theme
	now := m.opts.Now()
	f := m.shown()
	crit := 0
	for i := range f.clusters {
		if clusterLevel(&f.clusters[i]) == theme.LevelCrit {
			crit++
		}
	}
	counts := fmt.Sprintf("%d clusters", len(f.clusters))
	if crit > 0 {
		counts += " · " + th.Level(theme.LevelCrit).Render(fmt.Sprintf("%d in trouble", crit))
	}
	if m.at.IsZero() {
		return th.Level(theme.LevelOK).Render("● live") + th.Muted.Render(" · ") + counts +
			th.Muted.Render(fmt.Sprintf(" · %d events · t time travel · [ step back · p previous event", len(f.events)))
	}
	state := ""
	switch {
	case m.loading:
		state = " · loading…"
	case m.err != nil:
		state = " · " + th.Level(theme.LevelCrit).Render(m.err.Error())
	}
	return th.Prompt.Render("◷ "+m.at.UTC().Format("2006-01-02 15:04:05Z")) +
		th.Muted.Render(fmt.Sprintf(" (%s ago, from the history) · ", widget.Duration(now.Sub(m.at)))) + counts +
		th.Muted.Render(fmt.Sprintf(" · step %s", widget.Duration(m.opts.Step))) + state +
		th.Muted.Render(" · [ ] step · p n event · l live")
}

// treeLines renders every cluster: a header, then its members as a tree.
func (m *Model) treeLines(f frame, width int) []string {
	th := m.opts.Theme
	if len(f.clusters) == 0 {
		if !m.at.IsZero() {
			return []string{th.Muted.Render("No cluster was being watched at that time.")}
		}
		return []string{th.Muted.Render("No cluster yet: no collector has pushed a replication snapshot.")}
	}
	var out []string
	for i := range f.clusters {
		c := &f.clusters[i]
		if i > 0 {
			out = append(out, "")
		}
		out = append(out, m.clusterHeader(c))
		if c.Patroni != nil {
			out = append(out, widget.Truncate(m.patroniLine(c), width))
			out = append(out, m.disagreementLines(c, "", "   ", width)...)
		}
		depth := topology.Depths(&c.Cluster)
		pg := make([]string, len(c.Instances))
		// Patroni's column starts after the widest member that answers (a DOWN member's error is
		// cut there), within reason.
		col := 0
		for j, in := range c.Instances {
			pg[j] = m.memberLine(c, in, depth[in.Name])
			if in.Up {
				col = max(col, widget.Width(pg[j]))
			}
		}
		col = min(max(col, width/3), width*3/5)
		for j, in := range c.Instances {
			line := pg[j]
			if p := m.patroniPart(c, &in); p != "" {
				line = widget.Fit(line, col) + "  " + p
			}
			out = append(out, widget.Truncate(line, width))
			out = append(out, m.disagreementLines(c, in.Name, "   "+strings.Repeat("  ", depth[in.Name]+1), width)...)
		}
		if s := slotSummary(c); s != "" {
			out = append(out, "   "+th.Muted.Render("slots ")+s)
		}
	}
	return out
}

func (m *Model) clusterHeader(c *api.ClusterView) string {
	th := m.opts.Theme
	lvl := clusterLevel(c)
	primaries := topology.Primaries(&c.Cluster)
	what := ""
	switch {
	case c.Split:
		what = th.Level(theme.LevelCrit).Render("SPLIT BRAIN: " + strings.Join(primaries, ", ") + " all answer as primary")
	case len(primaries) == 0:
		what = th.Level(theme.LevelCrit).Render("NO PRIMARY")
	default:
		what = th.Muted.Render("primary ") + primaries[0]
	}
	return th.Marker(lvl) + " " + th.Bold.Render(c.Name) + th.Muted.Render(fmt.Sprintf(" %s · timeline %d · ", c.SystemIdentifier, c.Timeline)) + what
}

// patroniLine is Patroni's view of the cluster as a whole: scope, leader lock, maintenance mode,
// the members no collector watches and the last switch of its history.
func (m *Model) patroniLine(c *api.ClusterView) string {
	th := m.opts.Theme
	p := c.Patroni
	parts := []string{th.Muted.Render("patroni ") + p.Scope}
	if p.Leader == "" {
		parts = append(parts, th.Level(theme.LevelCrit).Render("no leader lock"))
	} else {
		parts = append(parts, th.Muted.Render("leader ")+p.Leader)
	}
	if p.Paused {
		parts = append(parts, th.Level(theme.LevelWarn).Render("PAUSED: no automatic failover"))
	}
	if u := topology.PatroniUnwatched(&c.Cluster); len(u) > 0 {
		parts = append(parts, th.Muted.Render("not watched: ")+strings.Join(u, ", "))
	}
	if n := len(p.History); n > 0 {
		last := p.History[n-1]
		sw := fmt.Sprintf("last switch tl %d", last.Timeline)
		if last.NewLeader != "" {
			sw += " → " + last.NewLeader
		}
		if last.At != nil {
			sw += " " + widget.Duration(m.opts.Now().Sub(*last.At)) + " ago"
		}
		parts = append(parts, th.Muted.Render(sw))
	}
	parts = append(parts, th.Muted.Render("via "+p.ReportedBy))
	return "   " + strings.Join(parts, th.Muted.Render(" · "))
}

// disagreementLines flags where Patroni and PostgreSQL differ about one instance ("" for the
// cluster as a whole).
func (m *Model) disagreementLines(c *api.ClusterView, instance, indent string, width int) []string {
	if c.Patroni == nil {
		return nil
	}
	var out []string
	for _, d := range c.Patroni.Disagreements {
		if d.Instance == instance {
			out = append(out, widget.Truncate(indent+m.opts.Theme.Level(theme.LevelWarn).Render("≠ "+d.Message), width))
		}
	}
	return out
}

// patroniPart is Patroni's word on one member, to put beside PostgreSQL's.
func (m *Model) patroniPart(c *api.ClusterView, in *api.Instance) string {
	th := m.opts.Theme
	pm := topology.PatroniMemberOf(&c.Cluster, in)
	switch {
	case pm == nil:
		return ""
	case pm.Error != "":
		return th.Level(theme.LevelWarn).Render("patroni does not answer")
	}
	parts := []string{th.Muted.Render("patroni"), pm.Role, pm.State}
	if pm.Timeline > 0 && (!in.Up || pm.Timeline != in.Timeline) {
		parts = append(parts, th.Muted.Render(fmt.Sprintf("tl %d", pm.Timeline)))
	}
	if pm.LagBytes != nil {
		parts = append(parts, th.Muted.Render("lag ")+widget.Bytes(*pm.LagBytes))
	}
	if pm.PendingRestart {
		parts = append(parts, th.Level(theme.LevelWarn).Render("pending restart"))
	}
	return th.Rule.Render("│ ") + strings.Join(parts, " ")
}

// memberLine is one member: indented under its upstream, with role, timeline and lags.
func (m *Model) memberLine(c *api.ClusterView, in api.Instance, depth int) string {
	th := m.opts.Theme
	indent := "   " + strings.Repeat("  ", depth)
	if depth > 0 {
		indent += th.Rule.Render("└ ")
	}
	if !in.Up {
		e := in.Error
		if e == "" {
			e = "does not answer"
		}
		return indent + in.Name + " " + th.Level(theme.LevelCrit).Render("DOWN") + " " + th.Muted.Render(e)
	}
	role := in.Role
	lvl := theme.LevelOK
	if in.Role == "primary" && c.Split {
		lvl = theme.LevelCrit
	}
	parts := []string{th.Level(lvl).Render(role), th.Muted.Render(fmt.Sprintf("tl %d", in.Timeline))}
	if in.Role == "standby" {
		switch r := in.Receiver; {
		case r == nil || !r.Connected:
			parts = append(parts, th.Level(theme.LevelCrit).Render("not streaming"))
		case in.Upstream == "":
			parts = append(parts, th.Level(theme.LevelWarn).Render("upstream unknown"))
		}
		if in.UpstreamLagBytes != nil {
			parts = append(parts, th.Muted.Render("lag ")+widget.Bytes(*in.UpstreamLagBytes))
		}
		if in.PrimaryLagBytes != nil && depth > 1 {
			parts = append(parts, th.Muted.Render("to primary ")+widget.Bytes(*in.PrimaryLagBytes))
		}
		if in.ReplayPaused {
			parts = append(parts, th.Level(theme.LevelWarn).Render("replay paused"))
		}
	}
	return indent + th.Bold.Render(in.Name) + "  " + strings.Join(parts, "  ")
}

// slotSummary names the slots in trouble, or counts them when none is.
func slotSummary(c *api.ClusterView) string {
	if len(c.Slots) == 0 {
		return ""
	}
	var bad []string
	for _, s := range c.Slots {
		if s.WALStatus == "lost" || s.WALStatus == "unreserved" {
			bad = append(bad, s.Instance+"/"+s.Name+" "+s.WALStatus)
		}
	}
	if len(bad) == 0 {
		return fmt.Sprintf("%d, all reserved", len(c.Slots))
	}
	return fmt.Sprintf("%d, ", len(c.Slots)) + strings.Join(bad, ", ")
}

// feedLines is the event feed: a heading, then the newest events first.
func (m *Model) feedLines(f frame, width, n int) []string {
	th := m.opts.Theme
	head := "events"
	if !m.at.IsZero() {
		head = "events up to " + m.at.UTC().Format("15:04:05Z")
	}
	out := []string{th.ColumnHeader.Render(head)}
	if len(f.events) == 0 {
		return append(out, th.Muted.Render("none"))
	}
	for _, e := range f.events {
		if len(out) >= n {
			break
		}
		line := th.Muted.Render(eventClock(e.At, m.opts.Now())) + " " + th.Level(severityLevel(e.Severity)).Render(e.Kind) + " " + e.Message
		out = append(out, widget.Truncate(line, width))
	}
	return out
}

// eventClock is the event's time of day, with the date when it is not today.
func eventClock(at, now time.Time) string {
	y1, m1, d1 := at.Local().Date()
	if y2, m2, d2 := now.Local().Date(); y1 != y2 || m1 != m2 || d1 != d2 {
		return at.Local().Format("Jan 2 15:04:05")
	}
	return widget.Clock(at)
}

func severityLevel(s string) theme.Level {
	switch s {
	case api.SeverityCritical:
		return theme.LevelCrit
	case api.SeverityWarning:
		return theme.LevelWarn
	}
	return theme.LevelNone
}
