package alerts

import (
	"strings"
	"testing"
	"time"

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
