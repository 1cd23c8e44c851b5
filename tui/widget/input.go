package widget

import (
	"strings"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
)

// Input is a one-line text field for filters and typed confirmations: printable runes append,
// backspace deletes one, ctrl+w a word, ctrl+u everything. (bubbles/textinput would pull a clipboard
// dependency the module does not carry; the console needs none of its extras.)
type Input struct {
	Prompt string
	Limit  int // maximum runes; 0 means 128
	value  []rune
}

// Value is the text typed so far.
func (in *Input) Value() string { return string(in.value) }

// Reset empties the field.
func (in *Input) Reset() { in.value = in.value[:0] }

// Update applies one key.
func (in *Input) Update(msg tea.KeyMsg) {
	switch msg.Type {
	case tea.KeyBackspace:
		if n := len(in.value); n > 0 {
			in.value = in.value[:n-1]
		}
	case tea.KeyCtrlU:
		in.Reset()
	case tea.KeyCtrlW:
		v := strings.TrimRightFunc(string(in.value), unicode.IsSpace)
		i := strings.LastIndexFunc(v, unicode.IsSpace)
		in.value = []rune(v[:i+1])
	case tea.KeySpace:
		in.add(' ')
	case tea.KeyRunes:
		for _, r := range msg.Runes {
			in.add(r)
		}
	}
}

func (in *Input) add(r rune) {
	limit := in.Limit
	if limit <= 0 {
		limit = 128
	}
	if unicode.IsPrint(r) && len(in.value) < limit {
		in.value = append(in.value, r)
	}
}

// View is the prompt, the text and a block cursor.
func (in *Input) View() string { return in.Prompt + string(in.value) + "█" }
