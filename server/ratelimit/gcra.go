package ratelimit

import "time"

// GCRA is Limiter's token bucket (perMinute tokens, refilled at perMinute per minute) in the form of
// the generic cell rate algorithm, which needs one timestamp per key rather than a token count and
// a time: the theoretical arrival time (TAT). A key's bucket holds
//
//	PerMinute - (tat - now) / Emission tokens, and is full when tat <= now.
//
// Taking a token moves tat to max(tat, now) + Emission, which is allowed as long as tat stays
// within Tolerance of now; a refusal leaves tat alone. This is what a shared store keeps (one row
// per key); Take is the reference the store's SQL implements.
type GCRA struct {
	PerMinute int
	Emission  time.Duration // the time one token takes to come back: a minute / PerMinute, in whole µs
	Tolerance time.Duration // PerMinute × Emission: how far tat may run ahead of now (an empty bucket)
}

// NewGCRA is the GCRA of a perMinute limit (at least 1). Emission is rounded to the microsecond,
// the store's timestamp precision, so that the arithmetic there is exact: a limit that does not
// divide a minute into whole microseconds (7 per minute) is off by less than one part in a million.
func NewGCRA(perMinute int) GCRA {
	perMinute = max(perMinute, 1)
	e := max((time.Minute / time.Duration(perMinute)).Round(time.Microsecond), time.Microsecond)
	return GCRA{PerMinute: perMinute, Emission: e, Tolerance: time.Duration(perMinute) * e}
}

// Take is one request at now against a key whose tat is tat (the zero time for a key never seen):
// the tat to keep (tat itself when refused) and the decision.
func (g GCRA) Take(tat, now time.Time) (time.Time, Decision) {
	next := tat
	if next.Before(now) {
		next = now
	}
	next = next.Add(g.Emission)
	if next.Sub(now) > g.Tolerance {
		return tat, g.Refused(tat, now)
	}
	return next, g.Admitted(next, now)
}

// Admitted is the decision for a request admitted at now that moved the key's tat to tat.
func (g GCRA) Admitted(tat, now time.Time) Decision {
	left := max((g.Tolerance-tat.Sub(now))/g.Emission, 0) // whole tokens: truncation is floor here
	return Decision{Allowed: true, Limit: g.PerMinute, Remaining: int(left)}
}

// Refused is the decision for a request refused at now, the key's tat being tat. A refused
// request's bucket holds less than one token, so the wait is always within (0, Emission]; a tat
// that does not fit (read from a snapshot older than the refusal, or unknown: the zero time) gives
// Emission, the longest possible wait.
func (g GCRA) Refused(tat, now time.Time) Decision {
	wait := g.Emission
	if !tat.IsZero() {
		wait = tat.Add(g.Emission).Sub(now) - g.Tolerance
	}
	if wait <= 0 || wait > g.Emission {
		wait = g.Emission
	}
	return Decision{Limit: g.PerMinute, RetryAfter: wait}
}
