// Package view is what the console's views share: the environment the shell gives each of them
// (Env) and the polling of an API resource (Poller).
package view

import (
	"context"
	"time"

	"github.com/pganalytics/pganalytics/tui/keys"
	"github.com/pganalytics/pganalytics/tui/theme"
)

// Env is what the shell gives every view.
type Env struct {
	Context context.Context // bounds the view's requests and runs; it ends when the console quits
	Theme   theme.Theme
	Keys    keys.Map
	Now     func() time.Time
}

// WithDefaults fills what was left unset: a context that never ends, the wall clock.
func (e Env) WithDefaults() Env {
	if e.Context == nil {
		e.Context = context.Background()
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}
