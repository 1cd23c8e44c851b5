package theme

import (
	"io"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/muesli/termenv"
)

func TestMarkersReadWithoutColour(t *testing.T) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii) // what NO_COLOR gives
	th := New(r, Light)
	tests := []struct {
		got, want string
	}{
		{th.Marker(LevelOK), "OK   "},
		{th.Marker(LevelWarn), "WARN "},
		{th.Marker(LevelCrit), "CRIT "},
		{th.Marker(LevelNone), "-    "},
		{th.MarkerText(LevelCrit, "STALE"), "STALE"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("marker %q, want %q", tt.got, tt.want)
		}
	}
}

func TestColourProfiles(t *testing.T) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI256)
	for _, mode := range []Mode{Dark, Light} {
		th := New(r, mode)
		if s := th.Marker(LevelCrit); !strings.Contains(s, "\x1b[") || !strings.Contains(s, "CRIT") {
			t.Errorf("mode %d: a critical marker without colour: %q", mode, s)
		}
		if s := th.Plain().Marker(LevelCrit); s != "CRIT " {
			t.Errorf("mode %d: the plain theme styles: %q", mode, s)
		}
	}
	if New(r, Dark).Level(LevelCrit).GetForeground() == New(r, Light).Level(LevelCrit).GetForeground() {
		t.Error("light and dark share their critical colour")
	}
}
