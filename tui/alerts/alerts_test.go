package alerts

import (
	"strings"
	"testing"
	"time"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
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
	want := "CollectorStale BufferUtilizationHigh ReplicationSlotLost ReplicationLagHigh"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("order %s, want firing first, critical first, then by name: %s", got, want)
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
		{"firing since", nil, []string{"CRIT  CollectorStale", "FIRING 4m00s ago", "OK    ReplicationLagHigh", "quiet"}},
		{"detail shows labels", []string{"enter"}, []string{"label collector", "prod-west", "since            15:00:05 (4m00s ago)"}},
		{"detail of the second", []string{"j", "enter"}, []string{"BufferUtilizationHigh", "threshold        0.7"}},
		{"filter by label", []string{"/", "l", "o", "s", "t", "enter"}, []string{"ReplicationSlotLost"}},
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
