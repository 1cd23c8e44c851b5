package widget

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
)

// Filter is the "/" input of the list views: typing narrows the list live, enter keeps the filter,
// esc clears it.
type Filter struct {
	input  Input
	typing bool
	keys   keys.Map
	theme  theme.Theme
}

// NewFilter returns an empty, inactive filter.
func NewFilter(t theme.Theme, k keys.Map) Filter {
	return Filter{input: Input{Prompt: "/", Limit: 64}, keys: k, theme: t}
}

// Typing reports whether the filter has the keyboard.
func (f *Filter) Typing() bool { return f.typing }

// Value is the current filter text, trimmed.
func (f *Filter) Value() string { return strings.TrimSpace(f.input.Value()) }

// Start gives the filter the keyboard.
func (f *Filter) Start() { f.typing = true }

// Clear empties the filter and releases the keyboard.
func (f *Filter) Clear() {
	f.typing = false
	f.input.Reset()
}

// Update handles a key while typing. changed reports that the filter text changed.
func (f *Filter) Update(msg tea.KeyMsg) (changed bool) {
	before := f.Value()
	switch {
	case key.Matches(msg, f.keys.Cancel):
		f.Clear()
	case key.Matches(msg, f.keys.Submit):
		f.typing = false
	default:
		f.input.Update(msg)
	}
	return f.Value() != before
}

// Match reports whether any field contains the filter text, ignoring case. An empty filter matches all.
func (f *Filter) Match(fields ...string) bool {
	q := strings.ToLower(f.Value())
	if q == "" {
		return true
	}
	for _, s := range fields {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// View is the input while typing, a reminder of the active filter otherwise, or "" when none.
func (f *Filter) View() string {
	switch {
	case f.typing:
		return f.theme.Accent.Render(f.input.View())
	case f.Value() != "":
		return f.theme.Accent.Render("filter: "+f.Value()) + f.theme.Muted.Render("  (esc clears)")
	}
	return ""
}
