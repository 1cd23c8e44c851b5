// Package keys holds every key binding of the console in one place. Views pick the bindings they
// honour and list them in their help; a binding a role may not use is disabled, which also hides it.
package keys

import "github.com/charmbracelet/bubbles/key"

// Map is every binding the console knows.
type Map struct {
	// Global.
	NextView  key.Binding
	PrevView  key.Binding
	GotoView  key.Binding // 1-8
	Help      key.Binding
	Quit      key.Binding
	Interrupt key.Binding // ctrl+c: refused mid-step like q, a second press within 2 s forces

	// Navigation.
	Up       key.Binding
	Down     key.Binding
	Top      key.Binding
	Bottom   key.Binding
	PageUp   key.Binding
	PageDown key.Binding

	// Actions.
	Open    key.Binding // details
	Back    key.Binding
	Filter  key.Binding
	Refresh key.Binding
	Pause   key.Binding
	Faster  key.Binding
	Slower  key.Binding

	Deregister key.Binding // collectors, operator+
	Silence    key.Binding // alerts, operator+
	Approve    key.Binding // approvals, operator+
	Reject     key.Binding // approvals, operator+
	RunStep    key.Binding // runbook, operator+
	RunPhase   key.Binding // runbook, operator+
	Resume     key.Binding // runbook, operator+
	Watch      key.Binding // runbook: the Phase 4 watch of the selected phase, operator+
	SkipStep   key.Binding // runbook prompts
	Abort      key.Binding // runbook prompts
	RunSuite   key.Binding // smoke

	// Time travel (topology).
	GoToTime    key.Binding
	StepBack    key.Binding
	StepForward key.Binding
	PrevEvent   key.Binding
	NextEvent   key.Binding
	Live        key.Binding

	// Prompts.
	Confirm key.Binding
	Deny    key.Binding
	Submit  key.Binding
	Cancel  key.Binding
}

// New returns the default bindings.
func New() Map {
	return Map{
		NextView:  key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevView:  key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous view")),
		GotoView:  key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8"), key.WithHelp("1-8", "go to view")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit (twice to force)")),

		Up:       key.NewBinding(key.WithKeys("k", "up"), key.WithHelp("k/↑", "up")),
		Down:     key.NewBinding(key.WithKeys("j", "down"), key.WithHelp("j/↓", "down")),
		Top:      key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G", "bottom")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d"), key.WithHelp("pgdn", "page down")),

		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Refresh: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		Pause:   key.NewBinding(key.WithKeys(" "), key.WithHelp("space", "pause")),
		Faster:  key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+", "refresh faster")),
		Slower:  key.NewBinding(key.WithKeys("-", "_"), key.WithHelp("-", "refresh slower")),

		Deregister: key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "deregister")),
		Silence:    key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "silence")),
		Approve:    key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "approve")),
		Reject:     key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "reject")),
		RunStep:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run step")),
		RunPhase:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "run phase")),
		Resume:     key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "resume last run")),
		Watch:      key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "watch phase")),
		SkipStep:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "skip step")),
		Abort:      key.NewBinding(key.WithKeys("a", "esc"), key.WithHelp("a/esc", "abort run")),
		RunSuite:   key.NewBinding(key.WithKeys("enter", "r"), key.WithHelp("enter/r", "run suite")),

		GoToTime:    key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "go to a time")),
		StepBack:    key.NewBinding(key.WithKeys("["), key.WithHelp("[", "one interval back")),
		StepForward: key.NewBinding(key.WithKeys("]"), key.WithHelp("]", "one interval on")),
		PrevEvent:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "previous event")),
		NextEvent:   key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "next event")),
		Live:        key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "back to live")),

		Confirm: key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		Deny:    key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n/esc", "no")),
		Submit:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply")),
		Cancel:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}
