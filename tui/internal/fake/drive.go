package fake

import (
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// Driver runs a model the way a program does, without a terminal: every command runs in its own
// goroutine and its message goes back to Update, one at a time. Commands blocked when the test ends
// (a pump waiting for its producer) end with the test's context.
type Driver struct {
	t     *testing.T
	Model tea.Model
	msgs  chan tea.Msg
}

// NewDriver starts m with its Init command.
func NewDriver(t *testing.T, m tea.Model) *Driver {
	d := &Driver{t: t, Model: m, msgs: make(chan tea.Msg, 64)}
	d.run(m.Init())
	return d
}

func (d *Driver) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		select {
		case d.msgs <- msg:
		case <-d.t.Context().Done():
		}
	}()
}

func (d *Driver) update(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
	default:
		m, cmd := d.Model.Update(msg)
		d.Model = m
		d.run(cmd)
	}
}

// Send delivers msg (a key) at once.
func (d *Driver) Send(msg tea.Msg) { d.update(msg) }

// Until processes messages until cond holds; after 5s the test fails.
func (d *Driver) Until(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case msg := <-d.msgs:
			d.update(msg)
		case <-deadline:
			d.t.Fatalf("timed out waiting for %s; screen:\n%s", what, d.Model.View())
		}
	}
}

// Press is the key named s ("enter", "esc", "tab", "shift+tab", "ctrl+c", " "), or the runes of s.
func Press(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEscape}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case " ":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}
