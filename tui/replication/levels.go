package replication

import (
	"fmt"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Thresholds judge lags. A value at or above Warn is WARN, at or above Crit is CRIT.
type Thresholds struct {
	WarnBytes, CritBytes     int64
	WarnSeconds, CritSeconds float64
}

// DefaultThresholds: one WAL segment of replay lag is worth a look, a GiB is an incident; likewise
// 30 s and 5 min of lag in time.
func DefaultThresholds() Thresholds {
	return Thresholds{WarnBytes: 16 << 20, CritBytes: 1 << 30, WarnSeconds: 30, CritSeconds: 300}
}

func (th Thresholds) bytesLevel(b int64) theme.Level {
	switch {
	case b >= th.CritBytes:
		return theme.LevelCrit
	case b >= th.WarnBytes:
		return theme.LevelWarn
	}
	return theme.LevelOK
}

func (th Thresholds) secondsLevel(s float64) theme.Level {
	switch {
	case s >= th.CritSeconds:
		return theme.LevelCrit
	case s >= th.WarnSeconds:
		return theme.LevelWarn
	}
	return theme.LevelOK
}

// verdict is a level with the reasons that set it.
type verdict struct {
	Level   theme.Level
	Reasons []string
}

func (v *verdict) raise(l theme.Level, reason string) {
	v.Level = max(v.Level, l)
	v.Reasons = append(v.Reasons, reason)
}

func judgeStandby(th Thresholds, sb api.Standby, self *api.Instance) verdict {
	v := verdict{Level: theme.LevelOK}
	switch sb.State {
	case "streaming":
	case "disconnected", "stopping", "":
		v.raise(theme.LevelCrit, "state "+stateText(sb.State))
	default:
		v.raise(theme.LevelWarn, "state "+sb.State)
	}
	if l := th.bytesLevel(sb.ReplayLagBytes); l > theme.LevelOK {
		v.raise(l, fmt.Sprintf("replay lag %s ≥ %s", widget.Bytes(sb.ReplayLagBytes), widget.Bytes(th.limitBytes(l))))
	}
	if l := th.secondsLevel(sb.ReplayLagSeconds); l > theme.LevelOK {
		v.raise(l, fmt.Sprintf("replay lag %s ≥ %s", widget.Seconds(sb.ReplayLagSeconds), widget.Seconds(th.limitSeconds(l))))
	}
	if self != nil {
		if !self.Up {
			v.raise(theme.LevelCrit, "standby instance down")
		}
		if r := self.Receiver; r != nil && !r.Connected {
			v.raise(theme.LevelCrit, "WAL receiver not connected")
		}
		if self.ReplayPaused {
			v.raise(theme.LevelWarn, "replay paused")
		}
	}
	return v
}

func (th Thresholds) limitBytes(l theme.Level) int64 {
	if l == theme.LevelCrit {
		return th.CritBytes
	}
	return th.WarnBytes
}

func (th Thresholds) limitSeconds(l theme.Level) float64 {
	if l == theme.LevelCrit {
		return th.CritSeconds
	}
	return th.WarnSeconds
}

func judgeSlot(th Thresholds, s api.Slot) verdict {
	v := verdict{Level: theme.LevelOK}
	switch s.WALStatus {
	case "lost":
		v.raise(theme.LevelCrit, "WAL lost: the slot can no longer serve its consumer")
	case "unreserved":
		v.raise(theme.LevelWarn, "WAL unreserved: about to be lost")
	case "extended":
		v.raise(theme.LevelWarn, "WAL extended beyond max_wal_size")
	}
	if !s.Active {
		v.raise(theme.LevelWarn, "inactive: retains WAL with no consumer")
	}
	if s.Conflicting != nil && *s.Conflicting {
		v.raise(theme.LevelCrit, "conflicting: invalidated by recovery conflict")
	}
	if s.RetainedBytes >= th.CritBytes {
		v.raise(theme.LevelWarn, "retains "+widget.Bytes(s.RetainedBytes)+" of WAL")
	}
	return v
}

func judgeSubscription(th Thresholds, s api.Subscription) verdict {
	v := verdict{Level: theme.LevelOK}
	if !s.Enabled {
		v.raise(theme.LevelWarn, "disabled")
	}
	if s.ApplyErrors > 0 || s.SyncErrors > 0 {
		v.raise(theme.LevelWarn, fmt.Sprintf("errors: %d apply, %d sync", s.ApplyErrors, s.SyncErrors))
	}
	if s.RelNotReady > 0 {
		v.raise(theme.LevelWarn, fmt.Sprintf("%d tables not ready", s.RelNotReady))
	}
	if s.LastMsgAgeSeconds != nil {
		if l := th.secondsLevel(*s.LastMsgAgeSeconds); l > theme.LevelOK {
			v.raise(l, "no message for "+widget.Seconds(*s.LastMsgAgeSeconds))
		}
	}
	return v
}

func judgeInstance(in api.Instance) verdict {
	if !in.Up {
		reason := "down"
		if in.Error != "" {
			reason = "down: " + in.Error
		}
		return verdict{Level: theme.LevelCrit, Reasons: []string{reason}}
	}
	return verdict{Level: theme.LevelOK}
}

func stateText(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
