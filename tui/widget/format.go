// Package widget holds the small pieces the views share: number and age formatting, bars,
// sparklines, a bounded history ring, a filter input, confirmation prompts and a cursor over rows.
package widget

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Bytes formats n with binary units, at most 8 columns wide ("1023 B", "12.3 KiB", "1.2 GiB").
func Bytes(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	var s string
	switch {
	case i == 0:
		s = fmt.Sprintf("%d B", n)
	case v < 10:
		s = fmt.Sprintf("%.1f %s", v, units[i])
	default:
		s = fmt.Sprintf("%.0f %s", v, units[i])
	}
	if neg {
		return "-" + s
	}
	return s
}

// Seconds formats a duration in seconds compactly: "0.4s", "12s", "5m03s", "2h05m", "3d04h".
func Seconds(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return "?"
	}
	if s < 0 {
		return "-" + Seconds(-s)
	}
	switch {
	case s < 10:
		return fmt.Sprintf("%.1fs", s)
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	}
	total := int64(s)
	switch {
	case total < 3600:
		return fmt.Sprintf("%dm%02ds", total/60, total%60)
	case total < 86400:
		return fmt.Sprintf("%dh%02dm", total/3600, total%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", total/86400, total%86400/3600)
	}
}

// Duration formats a measured duration: milliseconds under a second ("12ms"), else as Seconds.
func Duration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return Seconds(d.Seconds())
}

// Number formats a measured value compactly: integers as such up to a million, then with an SI
// suffix ("7.86M"); fractions with three significant digits.
func Number(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 1e12:
		return fmt.Sprintf("%.3gT", v/1e12)
	case a >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// Age is how long ago t was, relative to now ("3.0s ago"); "never" for the zero time.
func Age(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return Seconds(d.Seconds()) + " ago"
}

// Clock is t as local wall-clock time with seconds.
func Clock(t time.Time) string { return t.Local().Format("15:04:05") }

// Fit truncates s (which may hold ANSI styles) to w columns with an ellipsis and pads it with spaces
// to exactly w columns.
func Fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if pad := w - ansi.StringWidth(s); pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// FitLeft is Fit aligned right: the padding goes before s.
func FitLeft(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if pad := w - ansi.StringWidth(s); pad > 0 {
		s = strings.Repeat(" ", pad) + s
	}
	return s
}

// Truncate cuts s (which may hold ANSI styles) to at most w columns, without padding.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// Short cuts an identifier to n runes with an ellipsis (UUIDs in narrow columns).
func Short(id string, n int) string {
	r := []rune(id)
	if len(r) <= n || n < 2 {
		return id
	}
	return string(r[:n-1]) + "…"
}

// Width is the number of columns s takes on screen, ANSI styles aside.
func Width(s string) int { return ansi.StringWidth(s) }
