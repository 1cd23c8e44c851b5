package topology

import (
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

func start(t *testing.T, f *fake.API) (*Model, *fake.Driver) {
	t.Helper()
	m := New(Options{Env: fake.Env(t), Source: f})
	m.SetSize(160, 40)
	d := fake.NewDriver(t, m)
	d.Until("loaded", func() bool { return strings.Contains(m.View(), "east-cascade") && m.opts.Step == 10*time.Second })
	return m, d
}

func press(d *fake.Driver, keys ...string) {
	for _, k := range keys {
		if k == "enter" || k == "esc" {
			d.Send(fake.Press(k))
			continue
		}
		for _, r := range k {
			d.Send(fake.Press(string(r)))
		}
	}
}

// TestTimeTravel drives the keys: each lands on the moment it names, with the clusters the history
// holds then, and l comes back to live.
func TestTimeTravel(t *testing.T) {
	now := fake.Now
	tests := []struct {
		name   string
		keys   []string
		wantAt time.Time // zero: live
		screen string
	}{
		{"step back one collection interval", []string{"["}, now.Add(-10 * time.Second), "primary east-replica1"},
		{"three steps back, one on", []string{"[", "[", "[", "]"}, now.Add(-20 * time.Second), "primary east-replica1"},
		{"a step on past now is live", []string{"[", "]", "]"}, time.Time{}, "● live"},
		{"previous event", []string{"p"}, now.Add(-time.Minute), "events up to 15:03:05Z"},
		{"back to the split brain", []string{"p", "p", "p"}, now.Add(-4 * time.Minute), "SPLIT BRAIN: east-primary, east-replica1"},
		{"next event from there", []string{"p", "p", "p", "p", "n"}, now.Add(-4 * time.Minute), "slot_invalidated"},
		{"to a time typed as a duration ago", []string{"t", "10m", "enter"}, now.Add(-10 * time.Minute), "primary east-primary"},
		{"to a clock time", []string{"t", "14:30", "enter"}, time.Date(2026, 2, 27, 14, 30, 0, 0, time.UTC), "primary east-primary"},
		{"before anything was watched", []string{"t", "2026-02-27T13:00:00Z", "enter"}, time.Date(2026, 2, 27, 13, 0, 0, 0, time.UTC), "No cluster was being watched"},
		{"l is live again", []string{"p", "p", "l"}, time.Time{}, "● live"},
		{"esc is live again", []string{"[", "esc"}, time.Time{}, "● live"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.Failover()
			m, d := start(t, f)
			press(d, tt.keys...)
			d.Until("landed", func() bool { return !m.loading && strings.Contains(m.View(), tt.screen) })
			if !m.at.Equal(tt.wantAt) {
				t.Errorf("at = %v, want %v", m.at, tt.wantAt)
			}
		})
	}
}

func TestTimePromptRefusesNonsense(t *testing.T) {
	m, d := start(t, fake.Failover())
	press(d, "t", "last tuesday", "enter")
	if !m.at.IsZero() || !strings.Contains(m.View(), `"last tuesday": want`) {
		t.Errorf("at %v:\n%s", m.at, m.View())
	}
	press(d, "t", "x", "esc")
	if m.Capturing() {
		t.Error("esc left the prompt open")
	}
}

// TestStreamedEventShowsAtOnce: an event from the stream is in the feed without waiting for a poll.
func TestStreamedEventShowsAtOnce(t *testing.T) {
	f := fake.Failover()
	f.Streamed = []api.Event{{ID: 8, At: fake.Now, Kind: api.EventInstanceRestarted, Severity: api.SeverityWarning,
		Cluster: "orders", Instance: "east-cascade", Message: "east-cascade restarted at 15:04:05"}}
	m, d := start(t, f)
	d.Until("the streamed event", func() bool { return strings.Contains(m.View(), "east-cascade restarted") })
	if m.live.events[0].ID != 8 {
		t.Errorf("feed starts with %+v", m.live.events[0])
	}
}

func TestNoPrimaryAndSplitAreBadged(t *testing.T) {
	m, _ := start(t, fake.Failover())
	if b := m.Badge(); b != "1" {
		t.Errorf("badge %q (west has no primary)", b)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 2, 27, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-02-27T14:00:00Z", time.Date(2026, 2, 27, 14, 0, 0, 0, time.UTC)},
		{"15:00", time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC)},
		{"16:00:30", time.Date(2026, 2, 26, 16, 0, 30, 0, time.UTC)}, // still to come today: yesterday's
		{"90s", now.Add(-90 * time.Second)},
		{"-1h", now.Add(-time.Hour)},
	} {
		got, err := ParseTime(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseTime("soon", now); err == nil {
		t.Error("ParseTime(soon) accepted")
	}
}

// TestPatroniBesidePostgres: a cluster under Patroni shows Patroni's word on each member beside
// PostgreSQL's, its cluster line, and flags where the two disagree.
func TestPatroniBesidePostgres(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *api.PatroniCluster, in []api.Instance)
		want   []string
	}{
		{"agreeing members and the cluster line", nil, []string{
			"patroni billing · leader billing-2 · last switch tl 3 → billing-2 20m00s ago · via billing-2",
			"│ patroni leader running", "│ patroni replica streaming lag 0 B pending restart"}},
		{"a disagreement is flagged under its member", nil, []string{"≠ Patroni says billing-3 is running; PostgreSQL does not answer"}},
		{"maintenance mode", func(p *api.PatroniCluster, _ []api.Instance) { p.Paused = true }, []string{"PAUSED: no automatic failover"}},
		{"no leader lock, flagged for the cluster", func(p *api.PatroniCluster, _ []api.Instance) {
			p.Leader = ""
			p.Disagreements = append(p.Disagreements, api.PatroniDisagreement{Code: api.PatroniNoLeader, Message: "Patroni has no leader; PostgreSQL's primary is billing-2"})
		}, []string{"no leader lock", "≠ Patroni has no leader; PostgreSQL's primary is billing-2"}},
		{"a member's Patroni does not answer", func(p *api.PatroniCluster, in []api.Instance) {
			p.Members = p.Members[1:] // billing-1 is no longer in /cluster either
			in[1].Patroni = &api.PatroniMember{Error: "connection refused"}
		}, []string{"patroni does not answer"}},
		{"a member no collector watches", func(p *api.PatroniCluster, _ []api.Instance) {
			p.Members = append(p.Members, api.PatroniMember{Name: "billing-4", Role: "replica", State: "streaming", Host: "10.2.0.4", Port: 5432})
		}, []string{"not watched: billing-4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.Failover()
			for i := range f.Topology.Clusters {
				if c := &f.Topology.Clusters[i]; c.Patroni != nil && tt.change != nil {
					tt.change(c.Patroni, c.Instances)
				}
			}
			m, _ := start(t, f)
			screen := m.View()
			for _, w := range tt.want {
				if !strings.Contains(screen, w) {
					t.Errorf("screen lacks %q:\n%s", w, screen)
				}
			}
		})
	}
}
