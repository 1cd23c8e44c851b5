package widget

import (
	"math"
	"strings"
)

// Bar draws frac (clamped to 0..1) as a bar of width cells: "███▌░░░░". Partial cells use eighth
// blocks so small differences still show.
func Bar(frac float64, width int) string {
	if width <= 0 {
		return ""
	}
	if math.IsNaN(frac) || frac < 0 {
		frac = 0
	}
	frac = min(frac, 1)
	eighths := int(math.Round(frac * float64(width*8)))
	if frac > 0 && eighths == 0 {
		eighths = 1 // anything above zero is visible
	}
	var b strings.Builder
	full := eighths / 8
	b.WriteString(strings.Repeat("█", full))
	cells := full
	if rem := eighths % 8; rem > 0 {
		b.WriteRune([]rune(" ▏▎▍▌▋▊▉")[rem])
		cells++
	}
	b.WriteString(strings.Repeat("░", width-cells))
	return b.String()
}

// LogFraction places v on a logarithmic scale where full is 1: lags span orders of magnitude, and a
// linear bar would show a 1 MiB lag next to a 1 GiB threshold as empty.
func LogFraction(v, full float64) float64 {
	if v <= 0 || full <= 0 {
		return 0
	}
	return math.Log1p(v) / math.Log1p(full)
}

// sparkLevels are the eighth blocks a sparkline is drawn with, lowest first.
const sparkLevels = "▁▂▃▄▅▆▇█"

// Sparkline draws the last width values (newest on the right) scaled between zero and their
// maximum; it is shorter than width while there are fewer values. An all-zero series is a flat
// baseline.
func Sparkline(values []float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	hi := 0.0
	for _, v := range values {
		if v > hi {
			hi = v
		}
	}
	sparkRunes := []rune(sparkLevels)
	var b strings.Builder
	b.Grow(len(values) * 3)
	for _, v := range values {
		i := 0
		if hi > 0 && v > 0 {
			i = int(math.Round(v / hi * float64(len(sparkRunes)-1)))
			i = max(1, min(i, len(sparkRunes)-1)) // a non-zero value never looks like zero
		}
		b.WriteRune(sparkRunes[i])
	}
	return b.String()
}
