package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"

	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// titleLine is the app name, the context (API URL, user, role) and the connection state.
func (a *App) titleLine() string {
	th := a.theme
	user := a.user
	if a.loggedIn && a.identity.User != "" {
		user = a.identity.User
	}
	role := "…"
	if a.loggedIn {
		role = a.identity.Role
		if role == "" {
			role = "unknown role, read-only"
		}
	}
	left := th.Title.Render("pgactl") + "  " + th.Text.Render(a.apiURL) + th.Muted.Render("  as ") +
		th.Bold.Render(orDash(user)) + th.Muted.Render(" ("+role+")")
	state := a.connState()
	gap := a.width - widget.Width(left) - widget.Width(state)
	if gap < 2 {
		return widget.Fit(left, max(0, a.width-widget.Width(state)-1)) + " " + state
	}
	return left + strings.Repeat(" ", gap) + state
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// connState is the connection in one word, with a symbol: the header's right end.
func (a *App) connState() string {
	th := a.theme
	if _, failing := a.failure(); failing {
		return th.Level(theme.LevelCrit).Render("✕ offline")
	}
	if !a.loggedIn && a.session != nil {
		return th.Muted.Render("… connecting")
	}
	if s, ok := a.feeds[conn.SourceStream]; ok && s.Err == nil {
		return th.Level(theme.LevelOK).Render("● live")
	}
	return th.Level(theme.LevelOK).Render("● connected")
}

// failure is the feed to report in the banner: the login first, then the views in a fixed order.
// The stream is left out: polling covers for it and the replication view says so.
func (a *App) failure() (conn.Msg, bool) {
	for _, src := range []string{conn.SourceLogin, conn.SourceReplication, conn.SourceCollectors, conn.SourceAlerts} {
		if m, ok := a.feeds[src]; ok && m.Err != nil {
			return m, true
		}
	}
	return conn.Msg{}, false
}

// banner explains a lost connection or a refused login ("" when all is well).
func (a *App) banner() string {
	m, ok := a.failure()
	if !ok {
		return ""
	}
	if m.Source == conn.SourceLogin && m.RetryIn == 0 {
		return "! LOGIN REFUSED: " + m.Err.Error() + " (check PGACTL_USERNAME / PGACTL_PASSWORD or the context)"
	}
	return fmt.Sprintf("! CONNECTION LOST (%s), reconnecting in %s: %s", m.Source, widget.Seconds(m.RetryIn.Seconds()), m.Err.Error())
}

// tabLine lists the views; the active one in brackets so it shows without colour. When the titles
// do not fit, the inactive ones shrink to their first four letters (numbers and badges stay).
func (a *App) tabLine() string {
	line := a.renderTabs(0)
	if widget.Width(line) > a.width {
		line = a.renderTabs(4)
	}
	return widget.Truncate(line, a.width)
}

// renderTabs renders the tab titles, inactive ones cut to short runes (0: whole).
func (a *App) renderTabs(short int) string {
	th := a.theme
	parts := make([]string, len(a.tabs))
	for i, t := range a.tabs {
		name := t.title
		if r := []rune(name); short > 0 && i != a.active && len(r) > short {
			name = string(r[:short])
		}
		title := fmt.Sprintf("%d %s", i+1, name)
		if b, ok := t.component.(badger); ok && b.Badge() != "" {
			title += " (" + b.Badge() + ")"
		}
		if i == a.active {
			parts[i] = th.TabActive.Render("[" + title + "]")
		} else {
			parts[i] = th.TabInactive.Render(" " + title + " ")
		}
	}
	return strings.Join(parts, " ")
}

// helpView is the one-line help bar under the view: the view's keys, cut to fit, then the shell's,
// which always show.
func (a *App) helpView() string {
	k := a.keys
	shell := a.help.ShortHelpView([]key.Binding{k.NextView, k.Help, k.Quit})
	sep := a.theme.Rule.Render(" • ")
	view := a.fitHelp(a.tabs[a.active].component.ShortHelp(), a.width-widget.Width(shell)-widget.Width(sep))
	if view == "" {
		return shell
	}
	return view + sep + shell
}

// fitHelp renders as many of bindings as fit in width, with an ellipsis when some are left out.
// (help.Model's own truncation lets the last item overflow when the ellipsis does not fit.)
func (a *App) fitHelp(bindings []key.Binding, width int) string {
	for n := len(bindings); n > 0; n-- {
		s := a.help.ShortHelpView(bindings[:n])
		if n < len(bindings) {
			s += a.theme.Muted.Render(" …")
		}
		if widget.Width(s) <= width {
			return s
		}
	}
	return ""
}

// fullHelp is the page "?" shows instead of the view: every key of the view, then the shell's.
func (a *App) fullHelp() string {
	k := a.keys
	th := a.theme
	view := a.tabs[a.active].component
	return th.Bold.Render(a.tabs[a.active].title+" keys") + "\n\n" + a.help.FullHelpView(view.FullHelp()) + "\n\n" +
		th.Bold.Render("Everywhere") + "\n\n" +
		a.help.FullHelpView([][]key.Binding{{k.NextView, k.PrevView, k.GotoView}, {k.Help, k.Quit, k.Interrupt}}) +
		"\n\n" + th.Muted.Render("? or esc closes this page")
}
