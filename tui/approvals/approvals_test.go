package approvals

import (
	"strings"
	"testing"
	"time"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
)

func pending() []api.PendingApproval {
	since := time.Date(2026, 2, 25, 15, 0, 5, 0, time.UTC)
	return []api.PendingApproval{
		{RunID: "20260225T150000Z-abc123", Env: "production", Phase: "production", Step: "migrate", Destructive: true,
			Approve: []string{api.TeamDatabaseLead}, Missing: []string{api.TeamDatabaseLead}, Executor: "alice", Since: since},
		{RunID: "20260225T150000Z-def456", Env: "production", Phase: "pre-deployment", Step: "team-review",
			Approve: []string{api.TeamDeploymentLead}, Missing: []string{api.TeamDeploymentLead}, Executor: "carol", Since: since},
	}
}

func TestApproveAndReject(t *testing.T) {
	tests := []struct {
		name     string
		role     string
		keys     []string
		want     []api.ApprovalRequest
		wantText string
	}{
		{"list", api.RoleOperator, nil, nil, "database-lead (2 people)"},
		{"approve with a comment", api.RoleOperator, []string{"a", "o", "k", "enter"},
			[]api.ApprovalRequest{{Phase: "production", Step: "migrate", Decision: "approved", Comment: "ok"}}, "approved as bob"},
		{"reject needs a comment", api.RoleOperator, []string{"j", "x", "enter"}, nil, "say why"},
		{"reject the second", api.RoleOperator, []string{"j", "x", "n", "o", "enter"},
			[]api.ApprovalRequest{{Phase: "pre-deployment", Step: "team-review", Decision: "rejected", Comment: "no"}}, "rejected as bob"},
		{"esc cancels", api.RoleOperator, []string{"a", "esc"}, nil, "cancelled"},
		{"a viewer cannot", api.RoleViewer, []string{"a"}, nil, "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fake.API{PendingR: pending()}
			m := New(Options{Env: fake.Env(t), Source: src})
			m.SetRole(tt.role)
			m.SetSize(100, 20)
			m.Update(m.Init()())
			if m.Badge() != "2" {
				t.Errorf("badge %q, want 2", m.Badge())
			}
			for _, k := range tt.keys {
				_, cmd := m.Update(fake.Press(k))
				if cmd != nil {
					if msg, ok := cmd().(decidedMsg); ok {
						m.Update(msg)
					}
				}
			}
			if len(src.Decisions) != len(tt.want) {
				t.Fatalf("decisions %+v, want %+v", src.Decisions, tt.want)
			}
			for i := range tt.want {
				if src.Decisions[i] != tt.want[i] {
					t.Errorf("decision %+v, want %+v", src.Decisions[i], tt.want[i])
				}
			}
			if v := m.View(); !strings.Contains(v, tt.wantText) {
				t.Errorf("view lacks %q:\n%s", tt.wantText, v)
			}
		})
	}
}
