package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds buckets shared by every API server using it (*store.Store: the rate_limits table).
// TakeRateLimit takes one token from key's bucket atomically, whatever other servers do at the same
// time, by the database's clock when at is the zero time (tests pass a time).
type Store interface {
	TakeRateLimit(ctx context.Context, key string, g GCRA, at time.Time) (Decision, error)
}

// Admitter is what the HTTP layer asks before it serves a request.
type Admitter interface {
	// Allow takes one token from key's bucket at now. It always answers, quickly.
	Allow(ctx context.Context, key string, now time.Time) Decision
	// Saturated reports whether the in-memory bucket table dropped buckets still in use lately.
	Saturated(now time.Time) bool
}

// Defaults for zero SharedOptions fields.
const (
	DefaultStoreTimeout = 75 * time.Millisecond
	DefaultProbeEvery   = time.Second
)

// SharedOptions configures NewShared.
type SharedOptions struct {
	// StoreTimeout bounds each store query; beyond it the request is decided in memory.
	StoreTimeout time.Duration
	// ProbeEvery is how often, while the store is away, one request tries it again (the others
	// are decided in memory without waiting for it).
	ProbeEvery time.Duration
	Logger     *slog.Logger
}

// Shared enforces one limit for all the API servers sharing a Store: each request takes its token
// from the store's bucket, so N servers together admit what one would. When the store fails or
// does not answer within StoreTimeout, requests are decided by this server's in-memory Limiter
// instead (the same limit, per server), until a probe finds the store back: limiting never fails a
// request and never waits on a store that is away.
type Shared struct {
	store      Store // nil: the in-memory buckets only
	local      *Limiter
	gcra       GCRA
	timeout    time.Duration
	probeEvery time.Duration
	log        *slog.Logger

	away      atomic.Bool  // the store failed; requests are decided in memory
	nextProbe atomic.Int64 // while away: unix nanoseconds after which one request tries the store
	fallbacks atomic.Int64 // requests decided in memory because the store was away

	mu        sync.Mutex // orders the transitions (and their log lines)
	awaySince time.Time
	awayFrom  int64 // fallbacks when the outage began
}

// NewShared limits through st, falling back to local (whose limit it uses). A nil st keeps every
// bucket in local.
func NewShared(st Store, local *Limiter, opts SharedOptions) *Shared {
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = DefaultProbeEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Shared{
		store: st, local: local, gcra: NewGCRA(local.PerMinute()),
		timeout: opts.StoreTimeout, probeEvery: opts.ProbeEvery, log: opts.Logger,
	}
}

// PerMinute is the configured limit.
func (s *Shared) PerMinute() int { return s.gcra.PerMinute }

// Allow takes one token from key's shared bucket, or from this server's own while the store is
// away. now is this server's clock, used only in memory: the store decides by the database's.
func (s *Shared) Allow(ctx context.Context, key string, now time.Time) Decision {
	if s.store == nil {
		return s.local.Allow(key, now)
	}
	probe := false
	if s.away.Load() {
		next := s.nextProbe.Load()
		if now.UnixNano() < next || !s.nextProbe.CompareAndSwap(next, now.Add(s.probeEvery).UnixNano()) {
			return s.fallback(key, now)
		}
		probe = true // this request alone tries the store until the next probe time
	}
	// Bounded by the timeout alone: a client going away must not cut the statement short, which
	// would cost the pool its connection and look like an outage.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	d, err := s.store.TakeRateLimit(qctx, key, s.gcra, time.Time{})
	cancel()
	if err == nil {
		if probe {
			s.back(now)
		}
		return d
	}
	s.lost(now, err)
	return s.fallback(key, now)
}

func (s *Shared) fallback(key string, now time.Time) Decision {
	s.fallbacks.Add(1)
	return s.local.Allow(key, now)
}

// lost starts an outage, unless one is under way (only its first failure is logged).
func (s *Shared) lost(now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.away.Load() {
		return
	}
	s.awaySince, s.awayFrom = now, s.fallbacks.Load()
	s.nextProbe.Store(now.Add(s.probeEvery).UnixNano())
	s.away.Store(true)
	s.log.Warn("rate limits fall back to this server's own buckets: the store did not answer",
		"err", err, "timeout", s.timeout.String(), "retry_every", s.probeEvery.String())
}

// back ends the outage: a probe got the store's answer.
func (s *Shared) back(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.away.Load() {
		return
	}
	s.away.Store(false)
	s.log.Info("rate limits shared through the store again",
		"after", now.Sub(s.awaySince).Round(time.Millisecond).String(), "decided_in_memory", s.fallbacks.Load()-s.awayFrom)
}

// Saturated reports whether the in-memory table (the fallback's) had to drop buckets in use.
func (s *Shared) Saturated(now time.Time) bool { return s.local.Saturated(now) }

// Fallbacks is the number of requests decided in memory because the store was away (a counter).
func (s *Shared) Fallbacks() int64 { return s.fallbacks.Load() }

// Away reports whether requests are being decided in memory because the store is away.
func (s *Shared) Away() bool { return s.away.Load() }

var _ Admitter = (*Shared)(nil)
