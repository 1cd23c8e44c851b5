package replication

import (
	"fmt"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// detailLines is the pane enter opens: every field of the selected entity, why it has its level and,
// for a standby, its lag history.
func (m *Model) detailLines(r *row, now time.Time) []string {
	th := m.opts.Theme
	var title string
	var fields [][2]string
	switch r.kind {
	case rowCollector:
		t := r.col.topo
		title = "collector " + t.CollectorName
		fields = [][2]string{{"id", t.CollectorID}, {"received", widget.Clock(t.ReceivedAt) + " (" + widget.Age(t.ReceivedAt, now) + ")"},
			{"collected", widget.Clock(r.col.at)}, {"stale", yesNo(t.Stale)}, {"clusters", fmt.Sprint(len(t.Snapshot.Clusters))}}
	case rowInstance:
		in := r.inst
		title = in.Role + " " + in.Name
		fields = [][2]string{{"address", in.Address}, {"up", yesNo(in.Up)}, {"error", orDash(in.Error)},
			{"version", serverVersion(in.ServerVersion)}, {"timeline", fmt.Sprint(in.Timeline)}, {"wal lsn", orDash(in.WALLSN)}}
		if in.Role == "standby" {
			fields = append(fields, instanceStandbyFields(in)...)
		}
	case rowStandby:
		sb := r.sb
		title = "standby " + sb.ApplicationName
		fields = standbyFields(*sb)
		if r.inst != nil {
			fields = append(fields, [2]string{"instance", r.inst.Name + " (" + r.inst.Address + ")"})
			fields = append(fields, instanceStandbyFields(r.inst)...)
		}
	case rowGhost:
		title = "standby " + r.ghost.Standby.ApplicationName + " (gone)"
		fields = append([][2]string{{"disappeared", widget.Clock(r.ghost.Since) + " (" + widget.Age(r.ghost.Since, now) + ")"}},
			standbyFields(r.ghost.Standby)...)
	case rowSlot:
		s := r.slot
		title = "slot " + s.Name
		fields = [][2]string{{"type", s.Type}, {"plugin", orDash(s.Plugin)}, {"database", orDash(s.Database)},
			{"active", yesNo(s.Active)}, {"retained WAL", widget.Bytes(s.RetainedBytes)}, {"wal_status", orDash(s.WALStatus)},
			{"safe_wal_size", optBytes(s.SafeWALSizeBytes)}, {"confirmed flush lag", optBytes(s.ConfirmedFlushLagBytes)},
			{"conflicting", optBool(s.Conflicting)}, {"inactive for", optSeconds(s.InactiveSeconds)},
			{"xmin age", fmt.Sprint(s.XminAge)}, {"catalog xmin age", fmt.Sprint(s.CatalogXminAge)}}
	case rowSubscription:
		s := r.sub
		title = "subscription " + s.Name
		fields = [][2]string{{"on", s.Instance}, {"enabled", yesNo(s.Enabled)}, {"last message", optSeconds(s.LastMsgAgeSeconds) + " ago"},
			{"apply errors", fmt.Sprint(s.ApplyErrors)}, {"sync errors", fmt.Sprint(s.SyncErrors)}, {"tables not ready", fmt.Sprint(s.RelNotReady)}}
	}
	lines := []string{th.Marker(r.verdict.Level) + " " + th.Bold.Render(title) + th.Muted.Render("   esc/enter closes")}
	for _, reason := range r.verdict.Reasons {
		lines = append(lines, strings.Repeat(" ", markerW)+th.Level(r.verdict.Level).Render("• "+reason))
	}
	if r.kind == rowStandby || r.kind == rowGhost {
		lines = append(lines, "")
		lines = append(lines, m.historyLines(r.key)...)
	}
	lines = append(lines, "")
	for _, f := range fields {
		lines = append(lines, "  "+th.Muted.Render(widget.Fit(f[0], 20))+" "+f[1])
	}
	return lines
}

func standbyFields(sb api.Standby) [][2]string {
	return [][2]string{{"client", orDash(sb.ClientAddr)}, {"state", stateText(sb.State)}, {"sync state", orDash(sb.SyncState)},
		{"slot", orDash(sb.SlotName)}, {"sent lag", widget.Bytes(sb.SentLagBytes)},
		{"write lag", widget.Bytes(sb.WriteLagBytes) + " · " + widget.Seconds(sb.WriteLagSeconds)},
		{"flush lag", widget.Bytes(sb.FlushLagBytes) + " · " + widget.Seconds(sb.FlushLagSeconds)},
		{"replay lag", widget.Bytes(sb.ReplayLagBytes) + " · " + widget.Seconds(sb.ReplayLagSeconds)},
		{"last reply", widget.Seconds(sb.ReplyAgeSeconds) + " ago"}, {"backend xmin age", fmt.Sprint(sb.BackendXminAge)}}
}

func instanceStandbyFields(in *api.Instance) [][2]string {
	f := [][2]string{{"receive→replay lag", widget.Bytes(in.ReceiveReplayLagBytes)}, {"replay delay", optSeconds(in.ReplayDelaySeconds)},
		{"last replay", optSeconds(in.LastReplayAgeSeconds) + " ago"}, {"replay paused", yesNo(in.ReplayPaused)}}
	if r := in.Receiver; r != nil {
		f = append(f, [2]string{"wal receiver", fmt.Sprintf("%s (connected: %s)", orDash(r.Status), yesNo(r.Connected))},
			[2]string{"sender", fmt.Sprintf("%s:%d", orDash(r.SenderHost), r.SenderPort)},
			[2]string{"receiver slot", orDash(r.SlotName)}, [2]string{"received timeline", fmt.Sprint(r.ReceivedTimeline)},
			[2]string{"last message", widget.Seconds(r.LastMsgAgeSeconds) + " ago"})
	} else {
		f = append(f, [2]string{"wal receiver", "none"})
	}
	return f
}

// historyLines draws the standby's recent replay lag in bytes and in seconds, with the range and
// the latest samples.
func (m *Model) historyLines(key string) []string {
	th := m.opts.Theme
	h := m.state.history[key]
	if h == nil || h.Len() == 0 {
		return []string{"  " + th.Muted.Render("no history yet")}
	}
	samples := h.Values()
	bytes := make([]float64, len(samples))
	secs := make([]float64, len(samples))
	for i, s := range samples {
		bytes[i], secs[i] = float64(s.Bytes), s.Secs
	}
	width := max(10, min(h.Cap(), m.width-24))
	first, last := samples[0], samples[len(samples)-1]
	lines := []string{
		"  " + th.Bold.Render(fmt.Sprintf("replay lag history: %d of %d samples, %s → %s", len(samples), h.Cap(),
			widget.Clock(first.At), widget.Clock(last.At))),
		"  " + th.Muted.Render(widget.Fit("bytes", 8)) + th.Accent.Render(widget.Sparkline(bytes, width)),
		"  " + th.Muted.Render(widget.Fit("", 8)) + fmt.Sprintf("min %s · max %s · now %s",
			widget.Bytes(int64(minOf(bytes))), widget.Bytes(int64(maxOf(bytes))), widget.Bytes(last.Bytes)),
		"  " + th.Muted.Render(widget.Fit("seconds", 8)) + th.Accent.Render(widget.Sparkline(secs, width)),
		"  " + th.Muted.Render(widget.Fit("", 8)) + fmt.Sprintf("min %s · max %s · now %s",
			widget.Seconds(minOf(secs)), widget.Seconds(maxOf(secs)), widget.Seconds(last.Secs)),
		"",
		"  " + th.ColumnHeader.Render(widget.Fit("AT", 10)+widget.FitLeft("REPLAY BYTES", 14)+widget.FitLeft("SECONDS", 10)),
	}
	for i := len(samples) - 1; i >= 0 && i >= len(samples)-10; i-- {
		s := samples[i]
		lvl := max(m.opts.Thresholds.bytesLevel(s.Bytes), m.opts.Thresholds.secondsLevel(s.Secs))
		lines = append(lines, "  "+widget.Fit(widget.Clock(s.At), 10)+widget.FitLeft(widget.Bytes(s.Bytes), 14)+
			widget.FitLeft(widget.Seconds(s.Secs), 10)+"  "+th.Marker(lvl))
	}
	return lines
}

func minOf(v []float64) float64 {
	lo := v[0]
	for _, x := range v {
		lo = min(lo, x)
	}
	return lo
}

func maxOf(v []float64) float64 {
	hi := v[0]
	for _, x := range v {
		hi = max(hi, x)
	}
	return hi
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func optBytes(p *int64) string {
	if p == nil {
		return "-"
	}
	return widget.Bytes(*p)
}

func optSeconds(p *float64) string {
	if p == nil {
		return "-"
	}
	return widget.Seconds(*p)
}

func optBool(p *bool) string {
	if p == nil {
		return "-"
	}
	return yesNo(*p)
}
