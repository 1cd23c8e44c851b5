package replication

import (
	"fmt"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Column widths. The narrow layout fits 80 columns with the sent/write/flush lags on a second line;
// from wideWidth on, every lag sits on the standby's own line.
const (
	wideWidth  = 140
	gutterW    = 2
	markerW    = theme.MarkerWidth + 1
	indent     = gutterW + markerW
	stateW     = 10
	syncW      = 9
	bytesW     = 8
	secsW      = 6
	sparkMax   = 40
	narrowName = 14
	wideName   = 18
	wideState  = 12
	barNarrow  = 8
	barWide    = 10
)

func (m *Model) wide() bool { return m.width >= wideWidth }

// cells joins columns, each fitted to its width, with one space between them.
func cells(cols ...string) string { return strings.Join(cols, " ") }

func fit(s string, w int) string   { return widget.Fit(s, w) }
func right(s string, w int) string { return widget.FitLeft(s, w) }

// renderRow renders r as its lines, exactly m.width columns each.
func (m *Model) renderRow(r *row, selected bool, now time.Time) []string {
	th := m.opts.Theme
	if selected {
		th = m.plain
	}
	var lines []string
	switch r.kind {
	case rowCollector:
		lines = []string{m.collectorLine(th, r, now)}
	case rowCluster:
		lines = []string{strings.Repeat(" ", markerW) + th.Muted.Render(fmt.Sprintf("cluster %s · timeline %d", r.cluster.SystemIdentifier, r.cluster.Timeline))}
	case rowInstance:
		lines = []string{m.instanceLine(th, r.inst)}
	case rowHeading:
		lines = []string{m.headingLine(th, r.text)}
	case rowNote:
		lines = []string{strings.Repeat(" ", markerW) + th.Muted.Render(r.text)}
	case rowStandby:
		lines = m.standbyLines(th, r, now)
	case rowGhost:
		lines = []string{m.ghostLine(th, r.ghost, now)}
	case rowSlot:
		lines = []string{m.slotLine(th, r)}
	case rowSubscription:
		lines = []string{m.subscriptionLine(th, r)}
	}
	for i, l := range lines {
		gutter := "  "
		if selected && i == 0 {
			gutter = "› "
		}
		l = widget.Fit(gutter+l, m.width)
		if selected {
			l = m.opts.Theme.Selected.Render(l)
		}
		lines[i] = l
	}
	return lines
}

func (m *Model) collectorLine(th theme.Theme, r *row, now time.Time) string {
	t := r.col.topo
	marker := th.Marker(theme.LevelOK)
	if t.Stale {
		marker = th.MarkerText(theme.LevelCrit, "STALE")
	}
	var b strings.Builder
	b.WriteString(marker + " " + th.Bold.Render(t.CollectorName) + " " + th.Muted.Render(widget.Short(t.CollectorID, 9)))
	b.WriteString(th.Muted.Render(" · received " + widget.Age(t.ReceivedAt, now)))
	var parts []string
	for _, l := range []theme.Level{theme.LevelCrit, theme.LevelWarn} {
		if n := r.counts[l]; n > 0 {
			parts = append(parts, th.Level(l).Render(fmt.Sprintf("%d %s", n, l.Word())))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, th.Level(theme.LevelOK).Render("all OK"))
	}
	b.WriteString(th.Muted.Render(" · ") + strings.Join(parts, th.Muted.Render(" · ")))
	return b.String()
}

func (m *Model) headingLine(th theme.Theme, which string) string {
	var cols []string
	switch which {
	case headStandbys:
		if m.wide() {
			cols = []string{fit("STANDBY", wideName), fit("STATE", wideState), fit("SYNC", syncW), right("SENT", bytesW),
				fit("   WRITE LAG", bytesW+1+secsW), fit("   FLUSH LAG", bytesW+1+secsW),
				fit("REPLAY LAG", barWide+1+bytesW+1+secsW), right("REPLY", secsW), "TREND"}
		} else {
			cols = []string{fit("STANDBY", narrowName), fit("STATE", stateW), fit("SYNC", syncW),
				fit("REPLAY LAG", barNarrow+1+bytesW+1+secsW), "TREND"}
		}
	case headSlots:
		cols = []string{fit("SLOT", 16), fit("TYPE", 8), fit("ACTIVE", 8), right("RETAINED", bytesW), fit("WAL", 10), "DETAILS"}
	case headSubscriptions:
		cols = []string{fit("SUBSCRIPTION", 16), fit("ON", 14), fit("STATUS", 8), right("LAST MSG", 8), "ERRORS"}
	}
	return strings.Repeat(" ", markerW) + th.ColumnHeader.Render(cells(cols...))
}

func serverVersion(v int) string {
	if v <= 0 {
		return "PG ?"
	}
	return fmt.Sprintf("PG %d.%d", v/10000, v%10000)
}

func (m *Model) instanceLine(th theme.Theme, in *api.Instance) string {
	marker := th.Marker(theme.LevelOK)
	if !in.Up {
		marker = th.MarkerText(theme.LevelCrit, "DOWN")
	}
	var detail []string
	switch {
	case !in.Up:
		detail = append(detail, th.Level(theme.LevelCrit).Render(orDash(in.Error)))
	case in.Role == "standby":
		detail = append(detail, fmt.Sprintf("tl %d", in.Timeline), "replayed "+orDash(in.WALLSN),
			"delay "+optSeconds(in.ReplayDelaySeconds))
		if in.ReplayPaused {
			detail = append(detail, th.Level(theme.LevelWarn).Render("replay PAUSED"))
		}
	default:
		detail = append(detail, fmt.Sprintf("tl %d", in.Timeline), "lsn "+orDash(in.WALLSN))
	}
	return marker + " " + cells(fit(in.Role, 8), fit(th.Bold.Render(in.Name), narrowName), fit(in.Address, 21),
		fit(serverVersion(in.ServerVersion), 8), strings.Join(detail, " · "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (m *Model) lagBar(th theme.Theme, bytes int64, width int) string {
	l := m.opts.Thresholds.bytesLevel(bytes)
	return th.Level(l).Render(widget.Bar(widget.LogFraction(float64(bytes), float64(m.opts.Thresholds.CritBytes)), width))
}

func (m *Model) secsText(th theme.Theme, s float64) string {
	return th.Level(m.opts.Thresholds.secondsLevel(s)).Render(right(widget.Seconds(s), secsW))
}

func (m *Model) bytesText(th theme.Theme, b int64) string {
	return th.Level(m.opts.Thresholds.bytesLevel(b)).Render(right(widget.Bytes(b), bytesW))
}

func (m *Model) trend(key string, width int) string {
	h := m.state.history[key]
	if h == nil || width <= 0 {
		return ""
	}
	samples := h.Values()
	vals := make([]float64, len(samples))
	for i, s := range samples {
		vals[i] = float64(s.Bytes)
	}
	return widget.Sparkline(vals, width)
}

func (m *Model) standbyLines(th theme.Theme, r *row, now time.Time) []string {
	sb := r.sb
	marker := th.Marker(r.verdict.Level)
	state := th.Level(stateLevel(sb.State)).Render(fit(stateText(sb.State), stateW))
	var first string
	if m.wide() {
		used := indent + wideName + 1 + wideState + 1 + syncW + 1 + bytesW + 1 + 2*(bytesW+1+secsW+1) +
			barWide + 1 + bytesW + 1 + secsW + 1 + secsW + 1
		state = th.Level(stateLevel(sb.State)).Render(fit(stateText(sb.State), wideState))
		first = marker + " " + cells(fit(th.Bold.Render(sb.ApplicationName), wideName), state, fit(sb.SyncState, syncW),
			right(widget.Bytes(sb.SentLagBytes), bytesW),
			right(widget.Bytes(sb.WriteLagBytes), bytesW), m.secsText(th, sb.WriteLagSeconds),
			right(widget.Bytes(sb.FlushLagBytes), bytesW), m.secsText(th, sb.FlushLagSeconds),
			m.lagBar(th, sb.ReplayLagBytes, barWide), m.bytesText(th, sb.ReplayLagBytes), m.secsText(th, sb.ReplayLagSeconds),
			right(widget.Seconds(sb.ReplyAgeSeconds), secsW), m.trend(r.key, min(sparkMax, m.width-used)))
	} else {
		used := indent + narrowName + 1 + stateW + 1 + syncW + 1 + barNarrow + 1 + bytesW + 1 + secsW + 1
		first = marker + " " + cells(fit(th.Bold.Render(sb.ApplicationName), narrowName), state, fit(sb.SyncState, syncW),
			m.lagBar(th, sb.ReplayLagBytes, barNarrow), m.bytesText(th, sb.ReplayLagBytes), m.secsText(th, sb.ReplayLagSeconds),
			m.trend(r.key, min(sparkMax, m.width-used)))
	}
	lines := []string{first}
	pad := strings.Repeat(" ", markerW)
	if !m.wide() {
		parts := []string{
			"sent " + widget.Bytes(sb.SentLagBytes),
			"write " + widget.Bytes(sb.WriteLagBytes) + " " + widget.Seconds(sb.WriteLagSeconds),
			"flush " + widget.Bytes(sb.FlushLagBytes) + " " + widget.Seconds(sb.FlushLagSeconds),
			"reply " + widget.Seconds(sb.ReplyAgeSeconds) + " ago",
		}
		if sb.SlotName != "" {
			parts = append(parts, "slot "+sb.SlotName)
		}
		lines = append(lines, pad+th.Muted.Render(strings.Join(parts, " · ")))
	}
	if r.inst != nil {
		lines = append(lines, pad+m.receiverText(th, r.inst))
	}
	return lines
}

func stateLevel(state string) theme.Level {
	switch state {
	case "streaming":
		return theme.LevelOK
	case "disconnected", "stopping", "":
		return theme.LevelCrit
	}
	return theme.LevelWarn
}

// receiverText is the standby's own view: its WAL receiver and replay progress.
func (m *Model) receiverText(th theme.Theme, in *api.Instance) string {
	parts := []string{th.Bold.Render(in.Name)}
	if !in.Up {
		return strings.Join(append(parts, th.Level(theme.LevelCrit).Render("DOWN "+in.Error)), " · ")
	}
	if r := in.Receiver; r != nil {
		l := theme.LevelOK
		if !r.Connected {
			l = theme.LevelCrit
		}
		recv := "receiver " + orDash(r.Status)
		if !r.Connected {
			recv = "receiver NOT CONNECTED (" + orDash(r.Status) + ")"
		}
		if r.SenderHost != "" {
			recv += fmt.Sprintf(" from %s:%d", r.SenderHost, r.SenderPort)
		}
		parts = append(parts, th.Level(l).Render(recv), fmt.Sprintf("tl %d", r.ReceivedTimeline),
			"msg "+widget.Seconds(r.LastMsgAgeSeconds)+" ago")
	} else {
		parts = append(parts, th.Level(theme.LevelWarn).Render("no WAL receiver"))
	}
	parts = append(parts, "delay "+optSeconds(in.ReplayDelaySeconds))
	if in.LastReplayAgeSeconds != nil {
		parts = append(parts, "last replay "+widget.Seconds(*in.LastReplayAgeSeconds)+" ago")
	}
	if in.ReplayPaused {
		parts = append(parts, th.Level(theme.LevelWarn).Render("replay PAUSED"))
	}
	return th.Muted.Render("↳ ") + strings.Join(parts, th.Muted.Render(" · "))
}

func (m *Model) ghostLine(th theme.Theme, g *ghost, now time.Time) string {
	sb := g.Standby
	w := narrowName
	if m.wide() {
		w = wideName
	}
	return th.MarkerText(theme.LevelCrit, "GONE") + " " + cells(fit(th.Bold.Render(sb.ApplicationName), w),
		th.Level(theme.LevelCrit).Render("disappeared "+widget.Age(g.Since, now)),
		th.Muted.Render(fmt.Sprintf("· was %s %s, replay lag %s", stateText(sb.State), sb.SyncState, widget.Bytes(sb.ReplayLagBytes))))
}

func (m *Model) slotLine(th theme.Theme, r *row) string {
	s := r.slot
	active := th.Level(theme.LevelOK).Render(fit("active", 8))
	if !s.Active {
		active = th.Level(theme.LevelWarn).Render(fit("inactive", 8))
	}
	walLevel := theme.LevelOK
	switch s.WALStatus {
	case "lost":
		walLevel = theme.LevelCrit
	case "unreserved", "extended":
		walLevel = theme.LevelWarn
	}
	var detail []string
	if s.Type == "logical" {
		detail = append(detail, s.Plugin+"@"+s.Database)
		if s.ConfirmedFlushLagBytes != nil {
			detail = append(detail, "confirmed lag "+widget.Bytes(*s.ConfirmedFlushLagBytes))
		}
	}
	if s.SafeWALSizeBytes != nil {
		detail = append(detail, "safe "+widget.Bytes(*s.SafeWALSizeBytes))
	}
	if s.InactiveSeconds != nil && !s.Active {
		detail = append(detail, "inactive "+widget.Seconds(*s.InactiveSeconds))
	}
	if s.Conflicting != nil && *s.Conflicting {
		detail = append(detail, th.Level(theme.LevelCrit).Render("CONFLICTING"))
	}
	return th.Marker(r.verdict.Level) + " " + cells(fit(th.Bold.Render(s.Name), 16), fit(s.Type, 8), active,
		right(widget.Bytes(s.RetainedBytes), bytesW), th.Level(walLevel).Render(fit(orDash(s.WALStatus), 10)),
		th.Muted.Render(strings.Join(detail, " · ")))
}

func (m *Model) subscriptionLine(th theme.Theme, r *row) string {
	s := r.sub
	status := th.Level(theme.LevelOK).Render(fit("enabled", 8))
	if !s.Enabled {
		status = th.Level(theme.LevelWarn).Render(fit("disabled", 8))
	}
	last := "-"
	if s.LastMsgAgeSeconds != nil {
		last = widget.Seconds(*s.LastMsgAgeSeconds)
	}
	errs := fmt.Sprintf("apply %d · sync %d · not ready %d", s.ApplyErrors, s.SyncErrors, s.RelNotReady)
	errLevel := theme.LevelNone
	if s.ApplyErrors+s.SyncErrors+s.RelNotReady > 0 {
		errLevel = theme.LevelWarn
	}
	return th.Marker(r.verdict.Level) + " " + cells(fit(th.Bold.Render(s.Name), 16), fit(s.Instance, 14), status,
		right(last, 8), th.Level(errLevel).Render(errs))
}
