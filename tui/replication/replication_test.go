package replication

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/internal/fake"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // clocks on screen
	m.Run()
}

func newModel(t *testing.T, src Source) *Model {
	t.Helper()
	m := New(Options{Env: fake.Env(t), Source: src})
	m.SetSize(80, 22)
	return m
}

// loaded is a model holding the fixture's poll answer and its stream's pushes.
func loaded(t *testing.T) (*Model, *fake.API) {
	t.Helper()
	f := fake.Replication()
	m := newModel(t, f)
	m.Update(m.poll.Fetch()())
	for _, e := range f.Pushes {
		m.Update(widget.Event[api.CollectorTopology]{Pump: m.stream, Value: e})
	}
	return m, f
}

func TestStateHistoryIsBoundedAndDeduplicated(t *testing.T) {
	s := newState(3)
	f := fake.Replication()
	for range 2 { // the same pushes twice: a re-poll adds nothing
		for _, e := range f.Pushes {
			s.applyOne(e, fake.Now)
		}
	}
	k := standbyKey(fake.EastID, "7321560123456789012", f.Pushes[0].Snapshot.Clusters[0].Standbys[0])
	h := s.history[k]
	if h == nil || h.Len() != 3 {
		t.Fatalf("history of replica1 = %v, want 3 samples (the ring's capacity)", h)
	}
	if last := h.Values()[2]; last.Bytes != 7864320 {
		t.Errorf("newest sample = %d bytes, want the last push's 7864320", last.Bytes)
	}
}

func TestStateIgnoresOlderSnapshots(t *testing.T) {
	s := newState(10)
	f := fake.Replication()
	newest := f.Pushes[len(f.Pushes)-1]
	s.applyOne(newest, fake.Now)
	older := f.Pushes[0]
	older.Stale = true
	s.applyOne(older, fake.Now)
	cs := s.collectors[fake.EastID]
	if got := cs.topo.Snapshot.Clusters[0].Standbys[0].ReplayLagBytes; got != 7864320 {
		t.Errorf("replica1 lag = %d, an older snapshot overwrote the newer one", got)
	}
	if !cs.topo.Stale {
		t.Error("the stale flag of the older answer was not taken")
	}
}

func TestStateTracksDisappearedStandbys(t *testing.T) {
	s := newState(10)
	f := fake.Replication()
	first := f.Pushes[0]
	s.applyOne(first, fake.Now)

	gone := first
	gone.Snapshot.CollectedAt = first.Snapshot.CollectedAt.Add(time.Second)
	gone.Snapshot.Clusters = []api.Cluster{first.Snapshot.Clusters[0]}
	gone.Snapshot.Clusters[0].Standbys = gone.Snapshot.Clusters[0].Standbys[:1]
	s.applyOne(gone, fake.Now)
	ghosts := s.collectors[fake.EastID].sortedGhosts()
	if len(ghosts) != 1 || ghosts[0].Standby.ApplicationName != "replica2" {
		t.Fatalf("ghosts = %+v, want replica2", ghosts)
	}

	back := first
	back.Snapshot.CollectedAt = gone.Snapshot.CollectedAt.Add(time.Second)
	s.applyOne(back, fake.Now)
	if n := len(s.collectors[fake.EastID].ghosts); n != 0 {
		t.Errorf("%d ghosts after replica2 came back, want 0", n)
	}
}

func TestReplaceAllDropsDeregisteredCollectors(t *testing.T) {
	s := newState(10)
	f := fake.Replication()
	s.replaceAll(f.Topology, fake.Now)
	if len(s.order) != 2 || s.order[0] != fake.EastID {
		t.Fatalf("order = %v, want east then west (by name)", s.order)
	}
	s.replaceAll(api.ReplicationResponse{Collectors: f.Topology.Collectors[1:]}, fake.Now)
	if _, ok := s.collectors[fake.EastID]; ok || len(s.order) != 1 {
		t.Errorf("prod-east is still shown after the server stopped listing it")
	}
	for k := range s.history {
		if strings.Contains(k, fake.EastID) {
			t.Errorf("history %s of a removed collector kept", k)
		}
	}
}

func TestJudgements(t *testing.T) {
	th := DefaultThresholds()
	lost := api.Slot{Name: "s", Active: false, WALStatus: "lost"}
	tests := []struct {
		name string
		got  verdict
		want theme.Level
	}{
		{"streaming, small lag", judgeStandby(th, api.Standby{State: "streaming", ReplayLagBytes: 1 << 20}, nil), theme.LevelOK},
		{"catchup", judgeStandby(th, api.Standby{State: "catchup"}, nil), theme.LevelWarn},
		{"lag over warn bytes", judgeStandby(th, api.Standby{State: "streaming", ReplayLagBytes: 32 << 20}, nil), theme.LevelWarn},
		{"lag over crit seconds", judgeStandby(th, api.Standby{State: "streaming", ReplayLagSeconds: 600}, nil), theme.LevelCrit},
		{"disconnected", judgeStandby(th, api.Standby{State: "disconnected"}, nil), theme.LevelCrit},
		{"receiver down", judgeStandby(th, api.Standby{State: "streaming"}, &api.Instance{Up: true, Receiver: &api.WALReceiver{}}), theme.LevelCrit},
		{"slot ok", judgeSlot(th, api.Slot{Active: true, WALStatus: "reserved"}), theme.LevelOK},
		{"slot inactive", judgeSlot(th, api.Slot{Active: false, WALStatus: "reserved"}), theme.LevelWarn},
		{"slot lost", judgeSlot(th, lost), theme.LevelCrit},
		{"subscription disabled", judgeSubscription(th, api.Subscription{Enabled: false}), theme.LevelWarn},
		{"instance down", judgeInstance(api.Instance{Up: false, Error: "refused"}), theme.LevelCrit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.Level != tt.want {
				t.Errorf("level %v (%v), want %v", tt.got.Level, tt.got.Reasons, tt.want)
			}
			if tt.want > theme.LevelOK && len(tt.got.Reasons) == 0 {
				t.Error("a warning without a reason")
			}
		})
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		keys  []string
		check func(t *testing.T, m *Model)
	}{
		{"j moves to the next entity", []string{"j"}, func(t *testing.T, m *Model) {
			if !strings.HasPrefix(m.selKey, "in/"+fake.EastID) {
				t.Errorf("selection %q, want the primary of prod-east", m.selKey)
			}
		}},
		{"k at the top stays", []string{"k", "k"}, func(t *testing.T, m *Model) {
			if m.selKey != "col/"+fake.EastID {
				t.Errorf("selection %q, want prod-east", m.selKey)
			}
		}},
		{"G goes to the last entity", []string{"G"}, func(t *testing.T, m *Model) {
			if !strings.HasPrefix(m.selKey, "sub/"+fake.WestID) {
				t.Errorf("selection %q, want the subscription of prod-west", m.selKey)
			}
		}},
		{"g comes back", []string{"G", "g"}, func(t *testing.T, m *Model) {
			if m.selKey != "col/"+fake.EastID {
				t.Errorf("selection %q, want prod-east", m.selKey)
			}
		}},
		{"enter opens the detail, esc closes it", []string{"j", "j", "j", "enter"}, func(t *testing.T, m *Model) {
			if !m.detail || !strings.Contains(m.View(), "replay lag history: 5 of 120 samples") {
				t.Fatalf("detail not open on replica1:\n%s", m.View())
			}
			m.Update(fake.Press("esc"))
			if m.detail {
				t.Error("esc left the detail open")
			}
		}},
		{"space pauses and resumes", []string{" "}, func(t *testing.T, m *Model) {
			if !m.paused || !strings.Contains(m.View(), "PAUSED") {
				t.Fatal("not paused")
			}
			m.Update(fake.Press(" "))
			if m.paused {
				t.Error("still paused")
			}
		}},
		{"+ refreshes faster, - slower", []string{"+"}, func(t *testing.T, m *Model) {
			if m.refresh() != 2*time.Second {
				t.Errorf("refresh %s, want 2s", m.refresh())
			}
			m.Update(fake.Press("-"))
			m.Update(fake.Press("-"))
			if m.refresh() != 10*time.Second {
				t.Errorf("refresh %s, want 10s", m.refresh())
			}
		}},
		{"+ stops at the fastest", []string{"+", "+", "+", "+"}, func(t *testing.T, m *Model) {
			if m.refresh() != time.Second {
				t.Errorf("refresh %s, want 1s", m.refresh())
			}
		}},
		{"/ filters", []string{"/", "o", "r", "d", "e", "r", "s", "enter"}, func(t *testing.T, m *Model) {
			v := m.View()
			if strings.Contains(v, "replica1") || !strings.Contains(v, "orders_pub") || !strings.Contains(v, "orders_sub") {
				t.Errorf("filter orders shows:\n%s", v)
			}
			if m.Capturing() {
				t.Error("still typing after enter")
			}
			m.Update(fake.Press("esc"))
			if !strings.Contains(m.View(), "replica1") {
				t.Error("esc did not clear the filter")
			}
		}},
		{"typing a filter captures q", []string{"/", "q"}, func(t *testing.T, m *Model) {
			if !m.Capturing() || m.filter.Value() != "q" {
				t.Errorf("capturing=%v filter=%q", m.Capturing(), m.filter.Value())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := loaded(t)
			m.View()
			for _, k := range tt.keys {
				m.Update(fake.Press(k))
			}
			tt.check(t, m)
		})
	}
}

func TestPausedUpdatesAreHeld(t *testing.T) {
	f := fake.Replication()
	m := newModel(t, f)
	m.Update(m.poll.Fetch()())
	m.Update(fake.Press(" "))
	last := f.Pushes[len(f.Pushes)-1]
	m.Update(widget.Event[api.CollectorTopology]{Pump: m.stream, Value: last})
	if strings.Contains(m.View(), "7.5 MiB") {
		t.Fatal("a paused view applied an update")
	}
	if !strings.Contains(m.View(), "PAUSED (1 updates held)") {
		t.Errorf("status line does not count held updates:\n%s", m.View())
	}
	m.Update(fake.Press(" "))
	if !strings.Contains(m.View(), "7.5 MiB") {
		t.Errorf("resuming did not apply the held update:\n%s", m.View())
	}
}

func TestFailuresBackOffAndReport(t *testing.T) {
	m := newModel(t, &fake.API{Err: fake.ErrRefused})
	_, cmd := m.Update(m.poll.Fetch()())
	reports := collect(cmd)
	if len(reports) != 1 || reports[0].Source != conn.SourceReplication || reports[0].RetryIn != time.Second {
		t.Fatalf("reports = %+v, want one replication failure retrying in 1s", reports)
	}
	_, cmd = m.Update(m.poll.Fetch()())
	if r := collect(cmd); len(r) != 1 || r[0].RetryIn != 2*time.Second {
		t.Errorf("second failure = %+v, want a retry in 2s", r)
	}
	if !strings.Contains(m.View(), "Cannot load the replication topology") {
		t.Errorf("no error on screen:\n%s", m.View())
	}

	// The stream breaking is reported on its own and retried.
	m.Update(widget.Event[api.CollectorTopology]{Pump: m.stream, Done: true, Err: errors.New("stream reset")})
	if !strings.Contains(m.View(), "SSE down, polling") {
		t.Errorf("stream failure not shown:\n%s", m.View())
	}
}

// collect runs cmd (and the batches it holds) and returns the connection reports among its messages;
// timers are skipped.
func collect(cmd tea.Cmd) []conn.Msg {
	if cmd == nil {
		return nil
	}
	var out []conn.Msg
	switch msg := runQuick(cmd).(type) {
	case conn.Msg:
		out = append(out, msg)
	case tea.BatchMsg:
		for _, c := range msg {
			out = append(out, collect(c)...)
		}
	}
	return out
}

// runQuick runs cmd unless it blocks (a tea.Tick), which it abandons.
func runQuick(cmd tea.Cmd) tea.Msg {
	ch := make(chan tea.Msg, 1)
	go func() { ch <- cmd() }()
	select {
	case msg := <-ch:
		return msg
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}

func BenchmarkReplicationView(b *testing.B) {
	fleet := fake.Fleet(50, 5)
	m := New(Options{Env: fake.Env(b), Source: &fake.API{Topology: fleet}})
	m.SetSize(160, 48)
	m.Update(m.poll.Fetch()())
	for i := range 120 { // a full history per standby
		for _, t := range fleet.Collectors {
			t.Snapshot.CollectedAt = t.Snapshot.CollectedAt.Add(time.Duration(i+1) * time.Second)
			m.state.applyOne(t, fake.Now)
		}
	}
	m.dirty = true
	m.View()
	m.Update(fake.Press("j"))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = m.View()
	}
}

// BenchmarkReplicationRelayout is a frame after new data: the rows are rebuilt before drawing.
func BenchmarkReplicationRelayout(b *testing.B) {
	m := New(Options{Env: fake.Env(b), Source: &fake.API{Topology: fake.Fleet(50, 5)}})
	m.SetSize(160, 48)
	m.Update(m.poll.Fetch()())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.dirty = true
		_ = m.View()
	}
}

func TestProblemsShowAtOnce(t *testing.T) {
	m, f := loaded(t)
	m.SetSize(100, 60)
	last := f.Pushes[len(f.Pushes)-1]
	gone := last
	gone.Snapshot.CollectedAt = last.Snapshot.CollectedAt.Add(10 * time.Second)
	cl := last.Snapshot.Clusters[0]
	cl.Standbys = cl.Standbys[:1]
	gone.Snapshot.Clusters = []api.Cluster{cl}
	m.Update(widget.Event[api.CollectorTopology]{Pump: m.stream, Value: gone})
	v := m.View()
	for _, want := range []string{
		"GONE  replica2       disappeared 0.0s ago · was catchup potential, replay lag 48 MiB", // a standby that vanished
		"CRIT  old_backup       physical inactive  3.0 GiB lost",                               // a lost, inactive slot
		"STALE prod-west", // a collector that stopped pushing
		"DOWN  unknown  west-subscrib…",
	} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
}
