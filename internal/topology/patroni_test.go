package topology

import (
	"slices"
	"testing"

	"github.com/pganalytics/pganalytics/internal/api"
)

// patroniCluster is a → b with each member's own Patroni view and the cluster's from a.
func patroniCluster(leader string, roles map[string]string) api.ClusterView {
	c := cluster([]api.Instance{primary("a", 2, "0/200"), standby("b", "a", 2, "0/180")}, []api.Standby{row("a", "b", "async")})
	pc := &api.PatroniCluster{Scope: "s", Leader: leader, ReportedBy: "a"}
	for i := range c.Instances {
		in := &c.Instances[i]
		m := api.PatroniMember{Name: "p" + in.Name, Role: roles[in.Name], State: "running", Host: "localhost", Port: atoi(port(in.Name))}
		in.Patroni = &m
		pc.Members = append(pc.Members, m)
	}
	c.Patroni = pc
	Link(&c)
	return api.ClusterView{Cluster: c}
}

func codes(c api.ClusterView) []string {
	var out []string
	for _, d := range c.Patroni.Disagreements {
		out = append(out, d.Instance+":"+d.Code)
	}
	return out
}

func TestPatroniDisagreements(t *testing.T) {
	tests := []struct {
		name   string
		leader string
		roles  map[string]string
		want   []string
	}{
		{"agree", "pa", map[string]string{"a": "leader", "b": "replica"}, nil},
		{"leader lock on the standby", "pb", map[string]string{"a": "replica", "b": "leader"},
			[]string{"a:" + api.PatroniPrimaryNotLeader, "b:" + api.PatroniLeaderInRecovery}},
		{"no leader lock", "", map[string]string{"a": "replica", "b": "replica"},
			[]string{"a:" + api.PatroniPrimaryNotLeader, ":" + api.PatroniNoLeader}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codes(patroniCluster(tt.leader, tt.roles)); !slices.Equal(got, tt.want) {
				t.Errorf("disagreements %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDiffPatroni(t *testing.T) {
	agreed := patroniCluster("pa", map[string]string{"a": "leader", "b": "replica"})
	moved := patroniCluster("pb", map[string]string{"a": "replica", "b": "leader"})
	moved.Patroni.Paused = true
	moved.Patroni.History = []api.PatroniSwitch{{Timeline: 2, Reason: "switchover", NewLeader: "pb"}}
	moved.Instances[1].Patroni.Error = "connection refused"
	var got []string
	for _, e := range Diff(&agreed, &moved, t0) {
		if e.Kind == api.EventPatroniLeaderChanged && (e.Details["reason"] != "switchover" || e.Instance != "b") {
			t.Errorf("leader change %+v: want reason switchover on instance b", e)
		}
		got = append(got, e.Kind+"@"+e.Instance)
	}
	want := []string{api.EventPatroniUnreachable + "@b", api.EventPatroniLeaderChanged + "@b", api.EventPatroniPaused + "@",
		api.EventPatroniDisagreement + "@a", api.EventPatroniDisagreement + "@b"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if Signature(&agreed) == Signature(&moved) {
		t.Error("the signature ignores Patroni's leader")
	}
}
