// Package theme holds the console's styles. Every status the console shows in colour is also spelled
// out as a text marker, so the screen reads the same with NO_COLOR (where the renderer's profile is
// Ascii and every style is dropped).
package theme

import (
	"github.com/charmbracelet/lipgloss"
)

// Level is how healthy something is. Its marker text carries the meaning without colour.
type Level int

// Levels, mildest first so that max() picks the worst.
const (
	LevelNone Level = iota // no judgement (headings, unknown)
	LevelOK
	LevelWarn
	LevelCrit
)

// Word is the level's text marker.
func (l Level) Word() string {
	switch l {
	case LevelOK:
		return "OK"
	case LevelWarn:
		return "WARN"
	case LevelCrit:
		return "CRIT"
	default:
		return "-"
	}
}

// Mode picks the palette: dark or light terminal background.
type Mode int

// Modes.
const (
	Dark Mode = iota
	Light
)

// palette is the handful of colours the console uses.
type palette struct {
	fg, muted, accent, ok, warn, crit, selBg, bannerFg, bannerBg, border lipgloss.Color
}

func darkPalette() palette {
	return palette{
		fg: "#E4E4E7", muted: "#8B8B94", accent: "#7AA2F7", ok: "#73D990", warn: "#E0AF68",
		crit: "#F7768E", selBg: "#2F3549", bannerFg: "#1A1B26", bannerBg: "#F7768E", border: "#3B4261",
	}
}

func lightPalette() palette {
	return palette{
		fg: "#1F2328", muted: "#6E7781", accent: "#0550AE", ok: "#1A7F37", warn: "#9A6700",
		crit: "#CF222E", selBg: "#DDF4FF", bannerFg: "#FFFFFF", bannerBg: "#CF222E", border: "#D0D7DE",
	}
}

// Theme is the set of styles the views render with.
type Theme struct {
	Renderer *lipgloss.Renderer

	Text, Muted, Bold, Accent lipgloss.Style
	Title                     lipgloss.Style // the app name in the header
	TabActive, TabInactive    lipgloss.Style
	Rule                      lipgloss.Style // horizontal separators
	Selected                  lipgloss.Style // the cursor row (a "›" gutter marks it too)
	ColumnHeader              lipgloss.Style
	Banner                    lipgloss.Style // connection lost, authentication failed
	Notice                    lipgloss.Style // transient one-line messages
	Prompt                    lipgloss.Style // confirmation prompts

	levels [LevelCrit + 1]lipgloss.Style
}

// New builds the theme for mode on renderer r. With NO_COLOR the renderer's profile is Ascii and the
// styles render as plain text; the caller decides that when it creates r.
func New(r *lipgloss.Renderer, mode Mode) Theme {
	p := darkPalette()
	if mode == Light {
		p = lightPalette()
	}
	s := r.NewStyle
	t := Theme{
		Renderer:     r,
		Text:         s().Foreground(p.fg),
		Muted:        s().Foreground(p.muted),
		Bold:         s().Bold(true),
		Accent:       s().Foreground(p.accent),
		Title:        s().Bold(true).Foreground(p.accent),
		TabActive:    s().Bold(true).Foreground(p.accent).Underline(true),
		TabInactive:  s().Foreground(p.muted),
		Rule:         s().Foreground(p.border),
		Selected:     s().Background(p.selBg).Bold(true),
		ColumnHeader: s().Bold(true).Foreground(p.muted),
		Banner:       s().Bold(true).Foreground(p.bannerFg).Background(p.bannerBg),
		Notice:       s().Foreground(p.warn),
		Prompt:       s().Bold(true).Foreground(p.warn),
	}
	t.levels[LevelNone] = s().Foreground(p.muted)
	t.levels[LevelOK] = s().Foreground(p.ok)
	t.levels[LevelWarn] = s().Bold(true).Foreground(p.warn)
	t.levels[LevelCrit] = s().Bold(true).Foreground(p.crit)
	return t
}

// Level is the style for text judged at level l.
func (t Theme) Level(l Level) lipgloss.Style {
	if l < LevelNone || l > LevelCrit {
		l = LevelNone
	}
	return t.levels[l]
}

// Marker renders l's word, padded to the width of the longest word so columns line up.
func (t Theme) Marker(l Level) string {
	return t.Level(l).Render(pad(l.Word(), MarkerWidth))
}

// MarkerText renders an explicit word (GONE, STALE, LOST, FIRING…) in l's style, padded like Marker.
func (t Theme) MarkerText(l Level, word string) string {
	return t.Level(l).Render(pad(word, MarkerWidth))
}

// MarkerWidth is the column width of a marker.
const MarkerWidth = 5

func pad(s string, w int) string {
	for len(s) < w {
		s += " "
	}
	return s
}

// Plain is the theme with every style emptied, for text that another style wraps as a whole (the
// selected row): nested styles would end the outer one at their first reset.
func (t Theme) Plain() Theme {
	p := t.Renderer.NewStyle()
	plain := Theme{Renderer: t.Renderer, Selected: t.Selected}
	plain.Text, plain.Muted, plain.Bold, plain.Accent, plain.Title = p, p, p, p, p
	plain.TabActive, plain.TabInactive, plain.Rule, plain.ColumnHeader = p, p, p, p
	plain.Banner, plain.Notice, plain.Prompt = p, p, p
	for i := range plain.levels {
		plain.levels[i] = p
	}
	return plain
}
