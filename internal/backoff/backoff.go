// Package backoff is the one retry delay of the project: exponential from Min, doubling up to
// Max, optionally with equal jitter (half of each step fixed, half random) so that clients that
// failed together do not come back in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Step is the delay of the attempt-th retry in a row (1 is the first): first doubled attempt-1
// times, capped at limit.
func Step(first, limit time.Duration, attempt int) time.Duration {
	step := first
	for i := 1; i < attempt && step < limit; i++ {
		step *= 2
	}
	return min(step, limit)
}

// Jitter is step's equal jitter: uniformly in [step/2, step], randN drawing in [0, n).
func Jitter(step time.Duration, randN func(time.Duration) time.Duration) time.Duration {
	half := step / 2
	return half + randN(step-half+1)
}

// Backoff hands out the delays of consecutive retries; Reset after a success.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool // equal jitter on each delay
	attempt  int
}

// Next is the delay before the next retry.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	d := Step(b.Min, b.Max, b.attempt)
	if b.Jitter {
		return Jitter(d, rand.N[time.Duration])
	}
	return d
}

// Reset starts over from Min.
func (b *Backoff) Reset() { b.attempt = 0 }
