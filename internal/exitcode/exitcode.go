// Package exitcode carries process exit codes out of cobra commands. The codes are a contract for
// scripts (docs/architecture.md, exit codes): 0 ok, 1 a check failed, 2 usage or config error, 3 target unreachable,
// 4 authentication failed. The API server uses 1 for a failure at run time (database unreachable).
package exitcode

import "errors"

// The exit codes every pgAnalytics binary uses.
const (
	OK          = 0
	CheckFailed = 1
	Failure     = CheckFailed // the same code for commands that run rather than check
	Usage       = 2
	Unreachable = 3
	Auth        = 4
)

// Error is an error that ends the process with Code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With wraps err so that the process exits with code; a nil err stays nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Of is the exit code for err: OK for nil, the carried code for an *Error, else fallback.
func Of(err error, fallback int) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return fallback
}
