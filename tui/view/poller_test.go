package view

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package

	"github.com/pganalytics/pganalytics/tui/conn"
)

var errDown = errors.New("api unreachable")

// source answers its fetches in turn with n and err, counting them.
type source struct {
	n     int
	err   error
	calls int
}

func (s *source) fetch(context.Context) (int, error) {
	s.calls++
	return s.n, s.err
}

// report runs the first command of a batch, the connection report.
func report(t *testing.T, cmd tea.Cmd) conn.Msg {
	t.Helper()
	batch, ok := cmd().(tea.BatchMsg)
	if !ok || len(batch) != 2 {
		t.Fatalf("command is not a report and a timer")
	}
	return batch[0]().(conn.Msg)
}

func TestPollerAnswers(t *testing.T) {
	src := &source{n: 7}
	p := NewPoller(t.Context(), conn.SourceAlerts, src.fetch)
	var got []int
	show := func(n int) { got = append(got, n) }

	cmd, ok := p.Update(p.Fetch()(), time.Minute, show)
	if !ok || len(got) != 1 || got[0] != 7 {
		t.Fatalf("handled %v, got %v, want the answer 7", ok, got)
	}
	if r := report(t, cmd); r.Source != conn.SourceAlerts || r.Err != nil {
		t.Errorf("report %+v, want alerts working", r)
	}

	src.err = errDown
	var retries []time.Duration
	for range 3 {
		cmd, _ := p.Update(p.Fetch()(), time.Minute, show)
		retries = append(retries, report(t, cmd).RetryIn)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(retries, want) {
		t.Errorf("retries %v, want %v", retries, want)
	}
	if p.Err() != errDown || len(got) != 1 {
		t.Errorf("after failures: Err %v, answers %v", p.Err(), got)
	}

	src.err = nil
	p.Update(p.Fetch()(), time.Minute, show)
	src.err = errDown
	cmd, _ = p.Update(p.Fetch()(), time.Minute, show)
	if r := report(t, cmd); r.RetryIn != time.Second {
		t.Errorf("retry %s after a success, want the backoff reset to 1s", r.RetryIn)
	}
}

func TestPollerChains(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantGot bool
	}{
		{"an older chain's answer still shows", nil, true},
		{"an older chain's failure is dropped", errDown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{n: 1, err: tt.err}
			p := NewPoller(t.Context(), conn.SourceCollectors, src.fetch)
			old := p.Fetch()()
			p.Restart()
			shown := false
			cmd, ok := p.Update(old, time.Minute, func(int) { shown = true })
			if !ok || cmd != nil {
				t.Errorf("handled %v, command %v: an older chain must schedule nothing", ok, cmd != nil)
			}
			if shown != tt.wantGot || p.Err() != nil {
				t.Errorf("shown %v (want %v), Err %v", shown, tt.wantGot, p.Err())
			}
		})
	}
}

func TestPollerTimers(t *testing.T) {
	src := &source{}
	p := NewPoller(t.Context(), conn.SourceReplication, src.fetch)
	held := false
	p.Hold = func() bool { return held }
	ignore := func(int) {}

	if cmd, ok := p.Update(due[int]{p: p, gen: p.gen - 1}, time.Millisecond, ignore); !ok || cmd != nil {
		t.Errorf("an older chain's timer: handled %v, command %v", ok, cmd != nil)
	}
	held = true
	cmd, _ := p.Update(due[int]{p: p, gen: p.gen}, time.Millisecond, ignore)
	if _, ok := cmd().(due[int]); !ok || src.calls != 0 {
		t.Errorf("a held timer fetched (%d calls) instead of waiting again", src.calls)
	}
	held = false
	cmd, _ = p.Update(due[int]{p: p, gen: p.gen}, time.Millisecond, ignore)
	if _, ok := cmd().(answer[int]); !ok || src.calls != 1 {
		t.Errorf("a due timer did not fetch")
	}

	other := NewPoller(t.Context(), conn.SourceReplication, src.fetch)
	for _, msg := range []tea.Msg{other.Fetch()(), due[int]{p: other}} {
		if _, ok := p.Update(msg, time.Millisecond, ignore); ok {
			t.Errorf("%T of another poller handled", msg)
		}
	}
}

func TestPollerQuitting(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	p := NewPoller(ctx, conn.SourceAlerts, (&source{err: errDown}).fetch)
	msg := p.Fetch()()
	cancel()
	if cmd, _ := p.Update(msg, time.Minute, func(int) {}); cmd != nil || p.Err() != nil {
		t.Error("a failure after the console quit is reported and retried")
	}
}
