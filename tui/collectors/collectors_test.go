package collectors

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
	"github.com/pganalytics/pganalytics/tui/theme"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

func loaded(t *testing.T, role string) (*Model, *fake.API) {
	t.Helper()
	f := &fake.API{CollectorsR: fake.Collectors()}
	m := New(Options{Env: fake.Env(t), Source: f})
	m.SetSize(80, 20)
	m.SetRole(role)
	m.Update(m.Init()())
	return m, f
}

// run executes cmd and feeds its message back, as the program would, until a batch (the report and
// the next poll's timer) ends the chain.
func run(m *Model, cmd tea.Cmd) {
	for cmd != nil {
		msg := cmd()
		if _, ok := msg.(tea.BatchMsg); ok {
			return
		}
		_, cmd = m.Update(msg)
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		name string
		c    api.Collector
		want theme.Level
		word string
	}{
		{"active", api.Collector{Status: "active", BufferUtilization: 0.1}, theme.LevelOK, "OK"},
		{"stale", api.Collector{Status: "stale"}, theme.LevelCrit, "STALE"},
		{"buffer over 70%", api.Collector{Status: "active", BufferUtilization: 0.75}, theme.LevelWarn, "WARN"},
		{"buffer over 90%", api.Collector{Status: "active", BufferUtilization: 0.95}, theme.LevelCrit, "CRIT"},
		{"failures over 1%", api.Collector{Status: "active", CollectionsTotal: 100, CollectionFailuresTotal: 2}, theme.LevelWarn, "WARN"},
		{"never pushed", api.Collector{Status: "never_pushed"}, theme.LevelWarn, "NEW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, w := Level(tt.c); l != tt.want || w != tt.word {
				t.Errorf("Level = %v %s, want %v %s", l, w, tt.want, tt.word)
			}
		})
	}
}

func TestDeregister(t *testing.T) {
	tests := []struct {
		name        string
		role        string
		keys        []string
		wantDeleted []string
		wantText    string
	}{
		{"viewer is refused", api.RoleViewer, []string{"d"}, nil, "read-only"},
		{"operator confirms", api.RoleOperator, []string{"j", "j", "d", "y"}, []string{fake.WestID}, "deregistered prod-west"},
		{"admin declines", api.RoleAdmin, []string{"d", "n"}, nil, "deregistration cancelled"},
		{"esc declines", api.RoleAdmin, []string{"d", "esc"}, nil, "deregistration cancelled"},
		{"the prompt names the collector", api.RoleAdmin, []string{"j", "d"}, nil, "Deregister prod-east"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := loaded(t, tt.role)
			for _, k := range tt.keys {
				_, cmd := m.Update(fake.Press(k))
				run(m, cmd)
			}
			if got := f.DeletedIDs(); !slices.Equal(got, tt.wantDeleted) {
				t.Errorf("deleted %v, want %v", got, tt.wantDeleted)
			}
			if v := m.View(); !strings.Contains(v, tt.wantText) {
				t.Errorf("screen lacks %q:\n%s", tt.wantText, v)
			}
		})
	}
}

func TestViewerHelpHidesDeregister(t *testing.T) {
	for _, tt := range []struct {
		role string
		want bool
	}{{api.RoleViewer, false}, {api.RoleOperator, true}, {api.RoleAdmin, true}} {
		m, _ := loaded(t, tt.role)
		shown := false
		for _, b := range m.ShortHelp() {
			if b.Enabled() && b.Help().Desc == "deregister" {
				shown = true
			}
		}
		if shown != tt.want {
			t.Errorf("role %s: deregister in help = %v, want %v", tt.role, shown, tt.want)
		}
	}
}

func TestNavigationAndFilter(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want string // selected collector name
	}{
		{"starts at the top", nil, "lab"},
		{"j moves down", []string{"j"}, "prod-east"},
		{"G to the bottom", []string{"G"}, "prod-west"},
		{"g back", []string{"G", "g"}, "lab"},
		{"k clamps", []string{"k"}, "lab"},
		{"filter narrows", []string{"/", "w", "e", "s", "t", "enter"}, "prod-west"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := loaded(t, api.RoleViewer)
			for _, k := range tt.keys {
				m.Update(fake.Press(k))
			}
			if c, _ := m.selected(); c.Name != tt.want {
				t.Errorf("selected %q, want %q", c.Name, tt.want)
			}
		})
	}
}

func TestDetail(t *testing.T) {
	m, _ := loaded(t, api.RoleViewer)
	m.Update(fake.Press("j"))
	m.Update(fake.Press("enter"))
	v := m.View()
	for _, want := range []string{"collector prod-east", fake.EastID, "12% used, 0 samples dropped", "17280, 3 failed (0.02%)"} {
		if !strings.Contains(v, want) {
			t.Errorf("detail lacks %q:\n%s", want, v)
		}
	}
}
