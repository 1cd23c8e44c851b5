package widget

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package

	"github.com/pganalytics/pganalytics/tui/keys"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {10 << 10, "10 KiB"},
		{7864320, "7.5 MiB"}, {3 << 30, "3.0 GiB"}, {-2048, "-2.0 KiB"}, {1 << 62, "4.0 EiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.in); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0s"}, {0.44, "0.4s"}, {9.96, "10.0s"}, {12, "12s"}, {59.4, "59s"}, {60, "1m00s"},
		{303, "5m03s"}, {7500, "2h05m"}, {86400 * 3.2, "3d04h"}, {-2, "-2.0s"},
	}
	for _, tt := range tests {
		if got := Seconds(tt.in); got != tt.want {
			t.Errorf("Seconds(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{"never", time.Time{}, "never"},
		{"past", now.Add(-90 * time.Second), "1m30s ago"},
		{"future clamps to zero", now.Add(time.Minute), "0.0s ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Age(tt.at, now); got != tt.want {
				t.Errorf("Age = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		in    string
		w     int
		want  string
		right string
	}{
		{"abc", 5, "abc  ", "  abc"},
		{"abcdef", 4, "abc…", "abc…"},
		{"abc", 0, "", ""},
		{"\x1b[1mab\x1b[0m", 3, "\x1b[1mab\x1b[0m ", " \x1b[1mab\x1b[0m"},
	}
	for _, tt := range tests {
		if got := Fit(tt.in, tt.w); got != tt.want {
			t.Errorf("Fit(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
		if got := FitLeft(tt.in, tt.w); got != tt.right {
			t.Errorf("FitLeft(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.right)
		}
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		frac  float64
		width int
		want  string
	}{
		{0, 4, "░░░░"}, {1, 4, "████"}, {2, 4, "████"}, {-1, 4, "░░░░"},
		{0.5, 4, "██░░"}, {0.001, 4, "▏░░░"}, {0.3, 4, "█▎░░"},
	}
	for _, tt := range tests {
		if got := Bar(tt.frac, tt.width); got != tt.want {
			t.Errorf("Bar(%v, %d) = %q, want %q", tt.frac, tt.width, got, tt.want)
		}
	}
}

func TestLogFraction(t *testing.T) {
	if got := LogFraction(1<<30, 1<<30); got != 1 {
		t.Errorf("at the limit = %v, want 1", got)
	}
	if got := LogFraction(0, 1<<30); got != 0 {
		t.Errorf("zero = %v, want 0", got)
	}
	small, big := LogFraction(1<<20, 1<<30), LogFraction(1<<25, 1<<30)
	if !(0 < small && small < big && big < 1) {
		t.Errorf("want 0 < f(1MiB)=%v < f(32MiB)=%v < 1", small, big)
	}
}

func TestSparkline(t *testing.T) {
	tests := []struct {
		name  string
		in    []float64
		width int
		want  string
	}{
		{"empty", nil, 5, ""},
		{"flat zero", []float64{0, 0, 0}, 5, "▁▁▁"},
		{"scaled to max", []float64{0, 1, 2, 4, 8}, 5, "▁▂▃▅█"},
		{"keeps the newest", []float64{8, 0, 0, 8}, 2, "▁█"},
		{"tiny values still show", []float64{1, 1000}, 2, "▂█"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sparkline(tt.in, tt.width); got != tt.want {
				t.Errorf("Sparkline = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRing(t *testing.T) {
	r := NewRing[int](3)
	if r.Len() != 0 || len(r.Values()) != 0 {
		t.Fatal("a new ring holds values")
	}
	for i := 1; i <= 5; i++ {
		r.Push(i)
	}
	if got := r.Values(); len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Errorf("Values = %v, want [3 4 5]", got)
	}
	if r.Len() != 3 || r.Cap() != 3 {
		t.Errorf("Len=%d Cap=%d, want 3 3", r.Len(), r.Cap())
	}
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name                                    string
		offset, total, height, selStart, selEnd int
		want                                    int
	}{
		{"fits", 3, 5, 10, 4, 5, 0},
		{"scroll down to show the selection", 0, 100, 10, 15, 17, 7},
		{"scroll up", 50, 100, 10, 20, 21, 20},
		{"stays when visible", 10, 100, 10, 12, 13, 10},
		{"clamped at the end", 95, 100, 10, 99, 100, 90},
		{"tall selection shows its top", 0, 100, 3, 10, 20, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Window(tt.offset, tt.total, tt.height, tt.selStart, tt.selEnd); got != tt.want {
				t.Errorf("Window = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCursorNavigate(t *testing.T) {
	press := func(s string) tea.KeyMsg {
		if s == "pgdown" {
			return tea.KeyMsg{Type: tea.KeyPgDown}
		}
		return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
	}
	tests := []struct {
		name string
		keys []string
		want int
	}{
		{"down", []string{"j", "j"}, 2},
		{"up stops at the top", []string{"k"}, 0},
		{"bottom", []string{"G"}, 9},
		{"top", []string{"G", "g"}, 0},
		{"a page down", []string{"pgdown"}, 4},
		{"pages stop at the bottom", []string{"pgdown", "pgdown", "pgdown"}, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Cursor
			for _, k := range tt.keys {
				if !c.Navigate(press(k), keys.New(), 10, 4) {
					t.Fatalf("%s not taken as a list key", k)
				}
			}
			if c.Index != tt.want {
				t.Errorf("index %d, want %d", c.Index, tt.want)
			}
		})
	}
	var c Cursor
	if c.Navigate(press("/"), keys.New(), 10, 4) {
		t.Error("/ taken as a list key")
	}
}

func TestInput(t *testing.T) {
	runes := func(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }
	tests := []struct {
		name string
		keys []tea.KeyMsg
		want string
	}{
		{"types", []tea.KeyMsg{runes("ab"), {Type: tea.KeySpace}, runes("c")}, "ab c"},
		{"backspace", []tea.KeyMsg{runes("abc"), {Type: tea.KeyBackspace}}, "ab"},
		{"ctrl+w deletes a word", []tea.KeyMsg{runes("drop table"), {Type: tea.KeyCtrlW}}, "drop "},
		{"ctrl+u clears", []tea.KeyMsg{runes("abc"), {Type: tea.KeyCtrlU}}, ""},
		{"control runes are dropped", []tea.KeyMsg{runes("a\x07b")}, "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Input
			for _, k := range tt.keys {
				in.Update(k)
			}
			if got := in.Value(); got != tt.want {
				t.Errorf("Value = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNumberAndDuration(t *testing.T) {
	numbers := map[float64]string{0: "0", 300: "300", 0.83: "0.83", 0.7: "0.7", 7864320: "7.86M", 16777216: "16.8M", 2.5e9: "2.5G", -42: "-42", 1.0 / 3: "0.333"}
	for in, want := range numbers {
		if got := Number(in); got != want {
			t.Errorf("Number(%v) = %q, want %q", in, got, want)
		}
	}
	durations := map[time.Duration]string{12 * time.Millisecond: "12ms", 0: "0ms", 1830 * time.Millisecond: "1.8s", 90 * time.Second: "1m30s"}
	for in, want := range durations {
		if got := Duration(in); got != want {
			t.Errorf("Duration(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		n     int
		want  []string
	}{
		{"a bb ccc dddd", 6, 5, []string{"a bb", "ccc", "dddd"}},
		{"a bb ccc dddd", 6, 2, []string{"a bb", "ccc …"}},
		{"averyveryverylongword", 6, 2, []string{"avery…"}},
		{"", 6, 2, nil},
	}
	for _, tt := range tests {
		got := Wrap(tt.in, tt.width, tt.n)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Wrap(%q, %d, %d) = %q, want %q", tt.in, tt.width, tt.n, got, tt.want)
		}
	}
}
