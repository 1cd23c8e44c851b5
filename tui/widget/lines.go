package widget

import "strings"

// Lines joins exactly height lines of exactly width columns: missing lines are blank, extra ones
// dropped, so a view always fills the area the shell gave it.
func Lines(lines []string, width, height int) string {
	var b strings.Builder
	for i := range height {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i < len(lines) {
			b.WriteString(Fit(lines[i], width))
		} else {
			b.WriteString(strings.Repeat(" ", max(width, 0)))
		}
	}
	return b.String()
}

// Gutter is the selection marker column: "› " on the selected row, blanks elsewhere.
func Gutter(selected bool) string {
	if selected {
		return "› "
	}
	return "  "
}

// Wrap breaks s into at most n lines of width columns, on spaces; a cut text ends with "…".
func Wrap(s string, width, n int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case Width(line)+1+Width(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	if len(lines) > n {
		lines = lines[:n]
		lines[n-1] = Truncate(lines[n-1], width-2) + " …"
	}
	for i, l := range lines {
		lines[i] = Truncate(l, width)
	}
	return lines
}
