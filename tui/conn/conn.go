// Package conn carries the state of the console's connection to the API from the views, which talk to
// it, to the shell, which shows it in the header and as a banner.
package conn

import (
	"errors"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// ErrAuth marks an authentication failure (bad credentials, revoked token): retrying cannot fix it,
// so the shell says so instead of reconnecting.
var ErrAuth = errors.New("authentication failed")

// Source names the feeds that report.
const (
	SourceLogin       = "login"
	SourceReplication = "replication"
	SourceStream      = "stream"
	SourceCollectors  = "collectors"
	SourceAlerts      = "alerts"
	SourceTopology    = "topology"
	SourceApprovals   = "approvals"
)

// Msg is one feed's latest outcome: Err nil means it worked. RetryIn is when the feed tries again
// after a failure.
type Msg struct {
	Source  string
	Err     error
	RetryIn time.Duration
}

// Report wraps a Msg in a command.
func Report(source string, err error, retryIn time.Duration) tea.Cmd {
	return func() tea.Msg { return Msg{Source: source, Err: err, RetryIn: retryIn} }
}
