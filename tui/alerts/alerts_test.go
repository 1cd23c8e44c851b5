package alerts

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

func loaded(t *testing.T) *Model {
	t.Helper()
	m := New(Options{Env: fake.Env(t), Source: &fake.API{AlertsR: fake.Alerts()}})
	m.SetSize(80, 20)
	m.Update(m.Init()())
	return m
}

func TestOrderAndBadge(t *testing.T) {
	m := loaded(t)
	var names []string
	for _, a := range m.resp.Alerts {
		names = append(names, a.Name)
	}
	want := "CollectorStale CollectorBufferHigh ReplicationLagHigh ReplicationSlotWALAtRisk"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("order %s, want firing first, critical first, then pending, then by name: %s", got, want)
	}
	if m.Badge() != "2" {
		t.Errorf("badge %q, want 2 firing", m.Badge())
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{"firing since", nil, []string{"CRIT  CollectorStale", "FIRING   4m00s ago", "OK    ReplicationLagHigh", "pending  20s ago", "resolved 3m00s ago"}},
		{"detail shows labels", []string{"enter"}, []string{"label collector_name", "prod-west", "since                  15:00:05 (4m00s ago)", "runbook                docs/alerts/CollectorStale.md"}},
		{"detail of the second", []string{"j", "enter"}, []string{"CollectorBufferHigh", "threshold              70"}},
		{"filter by label", []string{"/", "s", "l", "o", "t", "enter"}, []string{"ReplicationSlotWALAtR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loaded(t)
			for _, k := range tt.keys {
				m.Update(fake.Press(k))
			}
			v := m.View()
			for _, w := range tt.want {
				if !strings.Contains(v, w) {
					t.Errorf("screen lacks %q:\n%s", w, v)
				}
			}
		})
	}
}

// TestStates: a pending alert shows since when its condition holds, a resolved one since when it
// ended, and neither counts as firing.
func TestStates(t *testing.T) {
	env := fake.Env(t)
	now := env.Now()
	ended := now.Add(-2 * time.Minute)
	resp := api.AlertsResponse{EvaluatedAt: now, Alerts: []api.Alert{
		{Name: "ReplicationLagHigh", Severity: "warning", State: "pending", ActiveAt: now.Add(-30 * time.Second), Value: 45, Threshold: 30, Summary: "lagging"},
		{Name: "InstanceDown", Severity: "critical", State: "resolved", ActiveAt: now.Add(-time.Hour), ResolvedAt: &ended, Summary: "back"},
	}}
	m := New(Options{Env: env, Source: &fake.API{AlertsR: resp}})
	m.SetSize(100, 20)
	m.Update(m.Init()())
	view := m.View()
	for _, want := range []string{"pending", "30s ago", "resolved", "2m00s ago"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	if m.Badge() != "" {
		t.Errorf("badge %q: nothing fires", m.Badge())
	}
}

// TestSilence: `s` asks an operator for an optional duration and a reason and silences the
// selected alert by its name and labels; a viewer is told it is read-only; esc cancels.
func TestSilence(t *testing.T) {
	src := &fake.API{AlertsR: fake.Alerts()}
	m := New(Options{Env: fake.Env(t), Source: src})
	m.SetSize(100, 20)
	m.Update(m.Init()())

	m.Update(fake.Press("s"))
	if !strings.Contains(m.View(), "read-only") || m.Capturing() {
		t.Fatalf("viewer:\n%s", m.View())
	}
	m.SetRole(api.RoleOperator)
	m.Update(fake.Press("s"))
	m.Update(fake.Press("esc"))
	if !strings.Contains(m.View(), "silence cancelled") || len(src.Silences) != 0 {
		t.Fatalf("esc:\n%s", m.View())
	}
	m.Update(fake.Press("s"))
	if !m.Capturing() || !strings.Contains(m.View(), "Silence CollectorStale (critical)") {
		t.Fatalf("prompt:\n%s", m.View())
	}
	m.Update(fake.Press("enter"))
	if !strings.Contains(m.View(), "say why") {
		t.Fatalf("empty reason:\n%s", m.View())
	}
	for _, r := range "4h collector host rebooting" {
		m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	_, cmd := m.Update(fake.Press("enter"))
	if cmd == nil {
		t.Fatal("no silence sent")
	}
	m.Update(cmd())
	if len(src.Silences) != 1 {
		t.Fatalf("silences %+v", src.Silences)
	}
	got := src.Silences[0]
	if got.Duration != "4h0m0s" || got.Comment != "collector host rebooting" || got.Matchers["alertname"] != "CollectorStale" ||
		got.Matchers["collector_name"] != "prod-west" {
		t.Fatalf("silence %+v", got)
	}
	if v := m.View(); !strings.Contains(v, "CollectorStale silenced until") || !strings.Contains(v, "http://am:9093") {
		t.Fatalf("after:\n%s", v)
	}
}
