package widget

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
)

// Confirm asks a yes/no question, or, for destructive actions, asks the operator to type a word
// (the name of what is about to be destroyed) before enter accepts.
type Confirm struct {
	question string
	typed    string // the word to type; empty for a y/n question
	input    Input
	open     bool
	keys     keys.Map
	theme    theme.Theme
}

// Answer is the outcome of a prompt once it closes.
type Answer int

// Answers.
const (
	Pending Answer = iota // still open
	Yes
	No
)

// NewConfirm returns a closed prompt.
func NewConfirm(t theme.Theme, k keys.Map) Confirm {
	return Confirm{input: Input{Prompt: "> "}, keys: k, theme: t}
}

// Ask opens a y/n question.
func (c *Confirm) Ask(question string) {
	c.question, c.typed, c.open = question, "", true
}

// AskTyped opens a question answered by typing word exactly.
func (c *Confirm) AskTyped(question, word string) {
	c.question, c.typed, c.open = question, word, true
	c.input.Reset()
}

// Open reports whether the prompt is waiting for an answer.
func (c *Confirm) Open() bool { return c.open }

// Update handles a key while the prompt is open.
func (c *Confirm) Update(msg tea.KeyMsg) Answer {
	if c.typed == "" {
		switch {
		case key.Matches(msg, c.keys.Confirm):
			c.close()
			return Yes
		case key.Matches(msg, c.keys.Deny):
			c.close()
			return No
		}
		return Pending
	}
	switch {
	case key.Matches(msg, c.keys.Cancel):
		c.close()
		return No
	case key.Matches(msg, c.keys.Submit):
		if c.input.Value() == c.typed {
			c.close()
			return Yes
		}
		return Pending
	}
	c.input.Update(msg)
	return Pending
}

func (c *Confirm) close() {
	c.open = false
	c.input.Reset()
}

// View renders the open prompt on one or two lines ("" when closed).
func (c *Confirm) View() string {
	if !c.open {
		return ""
	}
	if c.typed == "" {
		return c.theme.Prompt.Render(c.question) + c.theme.Muted.Render("  [y/N]")
	}
	return c.theme.Prompt.Render(c.question) + c.theme.Muted.Render("  type "+c.typed+" and press enter, esc cancels") +
		"\n" + c.input.View()
}
