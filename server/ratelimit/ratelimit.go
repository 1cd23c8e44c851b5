// Package ratelimit limits requests per key (a principal or a client IP) with a token bucket.
// Shared keeps the buckets in a store that every API server uses (the GCRA form of the bucket, one
// timestamp per key), so that the limit holds for the deployment as a whole; Limiter keeps them in
// this process, in a bounded table (buckets idle long enough to be full again are evicted, since a
// fresh bucket is equivalent), and is Shared's fallback while the store is away.
package ratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Decision is the outcome of one Allow call, with what the rate-limit headers report.
type Decision struct {
	Allowed    bool
	Limit      int           // requests per minute
	Remaining  int           // whole tokens left after this request
	RetryAfter time.Duration // when refused: until the next token
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen atomic.Int64 // unix nanoseconds
}

// Limiter is a table of token buckets of perMinute tokens, refilled continuously at perMinute/60 per
// second, holding at most maxKeys buckets.
type Limiter struct {
	perMinute int
	every     rate.Limit
	refill    time.Duration // time for an empty bucket to fill: an idle bucket this old is evictable
	maxKeys   int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
	forcedAt  time.Time // last time buckets still in use were dropped (the table was saturated)
}

// New returns a Limiter allowing perMinute requests per minute per key with a burst of perMinute.
func New(perMinute, maxKeys int) *Limiter {
	return &Limiter{
		perMinute: perMinute,
		every:     rate.Limit(float64(perMinute) / 60),
		refill:    time.Minute,
		maxKeys:   maxKeys,
		buckets:   make(map[string]*bucket),
	}
}

// PerMinute is the configured limit.
func (l *Limiter) PerMinute() int { return l.perMinute }

// Allow takes one token from key's bucket at now.
func (l *Limiter) Allow(key string, now time.Time) Decision {
	b := l.bucket(key, now)
	b.lastSeen.Store(now.UnixNano())
	d := Decision{Limit: l.perMinute}
	if b.lim.AllowN(now, 1) {
		d.Allowed = true
		d.Remaining = int(math.Max(0, math.Floor(b.lim.TokensAt(now))))
		return d
	}
	missing := 1 - b.lim.TokensAt(now)
	d.RetryAfter = time.Duration(missing / float64(l.every) * float64(time.Second))
	if d.RetryAfter <= 0 {
		d.RetryAfter = time.Millisecond
	}
	return d
}

func (l *Limiter) bucket(key string, now time.Time) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) >= l.refill {
		l.sweep(now)
	}
	b := &bucket{lim: rate.NewLimiter(l.every, l.perMinute)}
	l.buckets[key] = b
	return b
}

// sweep drops the buckets idle for a whole refill period (full again, so forgetting them changes
// nothing). If the table is still at capacity it drops arbitrary buckets down to 90%: an attacker
// flooding keys can then reset some buckets, which Saturated reports, but memory stays bounded.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	cutoff := now.Add(-l.refill).UnixNano()
	for k, b := range l.buckets {
		if b.lastSeen.Load() <= cutoff {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		return
	}
	target := l.maxKeys * 9 / 10
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
	l.forcedAt = now
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Saturated reports whether the table had to drop buckets still in use within the last refill
// period before now (limits were then weaker than configured for some keys).
func (l *Limiter) Saturated(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.forcedAt.IsZero() && now.Sub(l.forcedAt) < l.refill
}
