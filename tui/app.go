// Package tui is pgactl's console: a Bubble Tea program whose shell (header, tabs, banner, help)
// hosts one Component per view. Views talk to the API through small interfaces they define
// themselves; the shell wires them, tracks the connection and enforces quitting rules.
package tui

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/tui/conn"
	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// Component is one view: a tea.Model with its key help and a size set by the shell.
type Component interface {
	tea.Model
	help.KeyMap
	SetSize(width, height int)
}

// Optional capabilities of a Component, found by type assertion.
type (
	// capturer has the keyboard (a filter or a prompt): the shell's single-key shortcuts are off.
	capturer interface{ Capturing() bool }
	// busyReporter is running something that must not be abandoned (a runbook step).
	busyReporter interface{ Busy() bool }
	// roleAware enables or hides actions by role.
	roleAware interface{ SetRole(role string) }
	// badger adds a short count to its tab title.
	badger interface{ Badge() string }
)

// Identity is who the console acts as.
type Identity struct {
	User string
	Role string // admin | operator | viewer; empty when unknown (a bare token)
}

// Session logs in (or checks the token) and tells who the console is.
type Session interface {
	Login(ctx context.Context) (Identity, error)
}

// tab is one view with its title.
type tab struct {
	title     string
	component Component
}

// minimum terminal the console draws in; below it, a notice replaces the screen.
const minWidth, minHeight = 60, 12

// forceWindow is how soon a second ctrl+c must follow the first to force quitting mid-step.
const forceWindow = 2 * time.Second

type identityMsg struct {
	id  Identity
	err error
}

type loginRetryMsg struct{}

// App is the console's root model.
type App struct {
	ctx     context.Context
	cancel  context.CancelFunc
	session Session
	apiURL  string
	user    string // shown until the login answers
	theme   theme.Theme
	keys    keys.Map
	now     func() time.Time

	tabs   []tab
	active int

	width, height int
	help          help.Model
	showFullHelp  bool

	identity     Identity
	loggedIn     bool
	loginBackoff backoff.Backoff
	feeds        map[string]conn.Msg

	notice        string
	lastInterrupt time.Time
	abandoned     bool // forced to quit mid-step
	quitting      bool
}

// newApp builds the shell around tabs whose views were given ctx; cancel ends it when the console quits.
func newApp(ctx context.Context, cancel context.CancelFunc, o Options, tabs []tab) *App {
	h := help.New()
	h.Styles.ShortKey = o.Theme.Accent
	h.Styles.FullKey = o.Theme.Accent
	h.Styles.ShortDesc = o.Theme.Muted
	h.Styles.FullDesc = o.Theme.Muted
	h.Styles.ShortSeparator = o.Theme.Rule
	h.Styles.FullSeparator = o.Theme.Rule
	h.Styles.Ellipsis = o.Theme.Muted
	return &App{
		ctx: ctx, cancel: cancel, session: o.Session, apiURL: o.APIURL, user: o.User,
		theme: o.Theme, keys: o.Keys, now: o.Now, tabs: tabs,
		width: 80, height: 24, help: h,
		loginBackoff: backoff.Backoff{Min: time.Second, Max: 30 * time.Second},
		feeds:        map[string]conn.Msg{},
	}
}

// Init logs in and starts every view's first fetch; nothing here waits on the network.
func (a *App) Init() tea.Cmd {
	cmds := []tea.Cmd{a.login()}
	for _, t := range a.tabs {
		cmds = append(cmds, t.component.Init())
	}
	return tea.Batch(cmds...)
}

func (a *App) login() tea.Cmd {
	if a.session == nil {
		return nil
	}
	ctx, s := a.ctx, a.session
	return func() tea.Msg {
		id, err := s.Login(ctx)
		return identityMsg{id: id, err: err}
	}
}

// Update routes messages: keys to the shell's shortcuts or the active view, everything else to every
// view (each ignores what it did not ask for).
func (a *App) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		a.width, a.height = msg.Width, msg.Height
		a.layout()
		return a, nil
	case tea.KeyMsg:
		return a, a.handleKey(msg)
	case identityMsg:
		return a, a.onIdentity(msg)
	case loginRetryMsg:
		return a, a.login()
	case conn.Msg:
		a.feeds[msg.Source] = msg
		return a, nil
	}
	return a, a.broadcast(msg)
}

func (a *App) broadcast(msg tea.Msg) tea.Cmd {
	cmds := make([]tea.Cmd, 0, len(a.tabs))
	for i := range a.tabs {
		cmds = append(cmds, a.updateTab(i, msg))
	}
	return tea.Batch(cmds...)
}

func (a *App) updateTab(i int, msg tea.Msg) tea.Cmd {
	m, cmd := a.tabs[i].component.Update(msg)
	if c, ok := m.(Component); ok {
		a.tabs[i].component = c
	}
	return cmd
}

func (a *App) onIdentity(msg identityMsg) tea.Cmd {
	if msg.err != nil {
		if a.ctx.Err() != nil {
			return nil
		}
		if errors.Is(msg.err, conn.ErrAuth) {
			a.feeds[conn.SourceLogin] = conn.Msg{Source: conn.SourceLogin, Err: msg.err}
			return nil
		}
		retry := a.loginBackoff.Next()
		a.feeds[conn.SourceLogin] = conn.Msg{Source: conn.SourceLogin, Err: msg.err, RetryIn: retry}
		return tea.Tick(retry, func(time.Time) tea.Msg { return loginRetryMsg{} })
	}
	a.loginBackoff.Reset()
	delete(a.feeds, conn.SourceLogin)
	a.identity, a.loggedIn = msg.id, true
	for _, t := range a.tabs {
		if r, ok := t.component.(roleAware); ok {
			r.SetRole(msg.id.Role)
		}
	}
	return nil
}

func (a *App) capturing() bool {
	c, ok := a.tabs[a.active].component.(capturer)
	return ok && c.Capturing()
}

// busy reports whether any view, shown or not, is mid-step.
func (a *App) busy() bool {
	for _, t := range a.tabs {
		if b, ok := t.component.(busyReporter); ok && b.Busy() {
			return true
		}
	}
	return false
}

func (a *App) handleKey(k tea.KeyMsg) tea.Cmd {
	a.notice = ""
	if key.Matches(k, a.keys.Interrupt) {
		return a.interrupt()
	}
	if !a.capturing() {
		switch {
		case key.Matches(k, a.keys.Quit):
			if a.busy() {
				a.notice = "A step is running: quitting is refused until it ends (ctrl+c twice within 2s forces)."
				return nil
			}
			return a.quit()
		case key.Matches(k, a.keys.NextView):
			a.switchTo((a.active + 1) % len(a.tabs))
			return nil
		case key.Matches(k, a.keys.PrevView):
			a.switchTo((a.active + len(a.tabs) - 1) % len(a.tabs))
			return nil
		case key.Matches(k, a.keys.GotoView):
			if i := int(k.Runes[0] - '1'); i >= 0 && i < len(a.tabs) {
				a.switchTo(i)
			}
			return nil
		case key.Matches(k, a.keys.Help):
			a.showFullHelp = !a.showFullHelp
			return nil
		case a.showFullHelp && key.Matches(k, a.keys.Back):
			a.showFullHelp = false
			return nil
		}
	}
	return a.updateTab(a.active, k)
}

// interrupt is ctrl+c: like q, refused mid-step, unless it is the second press within forceWindow.
func (a *App) interrupt() tea.Cmd {
	now := a.now()
	if !a.busy() {
		return a.quit()
	}
	if !a.lastInterrupt.IsZero() && now.Sub(a.lastInterrupt) <= forceWindow {
		a.abandoned = true
		return a.quit()
	}
	a.lastInterrupt = now
	a.notice = "A step is running: press ctrl+c again within 2s to abandon it and quit."
	return nil
}

// AbandonedStep reports that the console was forced to quit while a runbook step ran or waited: the
// run was interrupted, which a script's exit code must show.
func (a *App) AbandonedStep() bool { return a.abandoned }

func (a *App) quit() tea.Cmd {
	a.quitting = true
	a.cancel()
	return tea.Quit
}

func (a *App) switchTo(i int) {
	a.active = i
	a.layout()
}

// Close cancels whatever still runs (the console quit or was killed) and waits up to timeout for
// runbook runs to record that they were interrupted.
func (a *App) Close(timeout time.Duration) {
	a.cancel()
	deadline := time.Now().Add(timeout)
	for _, t := range a.tabs {
		if w, ok := t.component.(interface{ Wait(time.Duration) }); ok {
			w.Wait(max(0, time.Until(deadline)))
		}
	}
}

// chrome is how many lines the header, banner, notice and help take.
func (a *App) chrome() int {
	n := 3 // title, tabs, rule
	if a.banner() != "" {
		n++
	}
	if a.notice != "" {
		n++
	}
	return n + 1 // the help bar
}

// layout gives every view the area left by the chrome.
func (a *App) layout() {
	a.help.Width = a.width
	h := max(1, a.height-a.chrome())
	for _, t := range a.tabs {
		t.component.SetSize(a.width, h)
	}
}

// View draws the header, the active view and the help bar, exactly width×height.
func (a *App) View() string {
	if a.quitting {
		return ""
	}
	if a.width < minWidth || a.height < minHeight {
		return widget.Lines([]string{"Terminal too small for pgactl:", "need at least 60×12."}, a.width, a.height)
	}
	a.layout()
	lines := []string{a.titleLine(), a.tabLine(), a.theme.Rule.Render(strings.Repeat("─", a.width))}
	if b := a.banner(); b != "" {
		lines = append(lines, a.theme.Banner.Render(widget.Fit(b, a.width)))
	}
	body := a.tabs[a.active].component.View()
	if a.showFullHelp {
		body = a.fullHelp()
	}
	lines = append(lines, strings.Split(body, "\n")...)
	if a.notice != "" {
		lines = append(lines, a.theme.Notice.Render(a.notice))
	}
	helpLines := strings.Split(a.helpView(), "\n")
	top := max(0, a.height-len(helpLines))
	for len(lines) < top {
		lines = append(lines, "")
	}
	lines = append(lines[:top], helpLines...)
	return widget.Lines(lines, a.width, a.height)
}
