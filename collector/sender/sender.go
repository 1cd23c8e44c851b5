// Package sender delivers queued batches to the API, oldest first: exponential backoff with jitter,
// capped at a few seconds, while the API is away (honouring a bounded Retry-After), the backlog at
// full speed once a push succeeds, malformed batches set aside, a revoked token fatal.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/collector/buffer"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/wait"
)

// Pusher is the API call the sender needs (client.Client implements it).
type Pusher interface {
	PushGzip(ctx context.Context, gzippedJSON []byte) (api.PushResponse, error)
}

// ErrUnauthorized means the API refused the collector token: it was revoked or never valid.
// Retrying cannot help; a person has to register the collector again.
var ErrUnauthorized = errors.New("the API refused the collector token (401): it was revoked or is invalid; run `pganalytics register` again")

// ErrForbidden means the API refused the collector itself (403): deleted or deregistered, a
// client certificate missing under mutual TLS, a token that is not a collector's. Every batch
// would be refused alike, so the collector stops with its spool kept instead of setting batches
// aside as malformed.
var ErrForbidden = errors.New("the API refused this collector (403); the spool is kept: see the message, then register again or fix the TLS client certificate")

// ErrNotSpooled is Flush's error on a queue without a spool (buffer.NewMemory): what was not
// delivered was not kept anywhere either.
var ErrNotSpooled = errors.New("not delivered and not spooled")

// ErrRejected is what --once reports when the API refused its batch as malformed (4xx): the batch
// is set aside (rejected/ in the spool) rather than retried.
var ErrRejected = errors.New("the API rejected the batch as malformed")

// Retry delays.
//
// DefaultMaxBackoff is small on purpose: while the API is away a failed attempt costs one refused
// connection, but every second of backoff still pending when it returns is a second the backlog
// waits. With a 5 s cap a collector is back within 5 s of the API, whatever the outage's length.
// The jitter (each delay random in [step/2, step]) keeps a fleet that lost the API together from
// coming back in lockstep.
//
// MaxRetryAfter bounds how long a server's Retry-After (429/503) may park delivery. Every value the
// API itself sends is within it, so those are honoured as sent: 2 s (push gate), 5 s (store away),
// 30 s (stream caps), and the rate limit's time to its next token, at most a minute at the lowest
// rate_limit_per_minute (1). A broken or hostile proxy saying "come back in an hour" must not leave
// batches piling up in the spool, possibly past disk_max_bytes (the oldest dropped), while the API
// behind it takes them again.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Second
	MaxRetryAfter     = time.Minute
)

// warnEvery is how often a continuing outage is logged at warn level; each attempt is at debug.
const warnEvery = time.Minute

// Options tune retries.
type Options struct {
	MinBackoff time.Duration // first retry delay (default DefaultMinBackoff, 1s)
	MaxBackoff time.Duration // cap (default DefaultMaxBackoff, 5s; at least MinBackoff)
	Log        *slog.Logger
}

// Stats count what the sender did since start.
type Stats struct {
	Delivered int64
	Failures  int64 // failed attempts (each retried later)
	Rejected  int64
}

// Sender moves batches from a queue to the API.
type Sender struct {
	q         *buffer.Queue
	p         Pusher
	opts      Options
	series    *seriesIDs
	delivered atomic.Int64
	failures  atomic.Int64
	rejected  atomic.Int64

	// Seams for tests: randN returns a random duration in [0, n) (n > 0); sleep waits d or until
	// ctx ends (false).
	randN func(n time.Duration) time.Duration
	sleep func(ctx context.Context, d time.Duration) bool
}

// New returns a Sender for q.
func New(q *buffer.Queue, p Pusher, opts Options) *Sender {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Sender{q: q, p: p, opts: opts, series: newSeriesIDs(), randN: rand.N[time.Duration], sleep: wait.Sleep}
}

// Stats reports the counters.
func (s *Sender) Stats() Stats {
	return Stats{Delivered: s.delivered.Load(), Failures: s.failures.Load(), Rejected: s.rejected.Load()}
}

type outcome int

const (
	delivered outcome = iota
	rejected
	retry
	fatal
)

// Run delivers batches as they come until ctx ends (nil) or the token is refused (ErrUnauthorized).
// After a failed attempt it waits (delay); after a successful one it goes straight on to the next
// batch, so a backlog drains as fast as the API takes it, oldest first.
func (s *Sender) Run(ctx context.Context) error {
	attempt := 0
	var outageStart, lastWarn time.Time
	for {
		b, ok := s.q.Peek()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-s.q.Ready():
				continue
			}
		}
		res, wait, err := s.deliver(ctx, b)
		switch res {
		case delivered, rejected:
			if attempt > 0 {
				s.opts.Log.Info("the API takes batches again; delivering the backlog at full speed",
					"failed_attempts", attempt, "outage", time.Since(outageStart).Round(time.Millisecond), "queued", s.q.Len())
			}
			attempt = 0
			continue
		case fatal:
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		d := s.delay(attempt, wait)
		level := slog.LevelDebug
		if attempt == 1 {
			outageStart = time.Now()
		}
		if attempt == 1 || time.Since(lastWarn) >= warnEvery {
			level, lastWarn = slog.LevelWarn, time.Now()
		}
		s.opts.Log.Log(ctx, level, "push failed; batches are spooled and retried", "err", err, "attempt", attempt,
			"retry_in", d.Round(time.Millisecond), "queued", s.q.Len())
		if !s.sleep(ctx, d) {
			return nil
		}
	}
}

// Flush delivers until the queue is empty (nil) or ctx ends (the error says what is left): used by
// --once and at shutdown. Failed attempts are retried with the same delays as Run.
func (s *Sender) Flush(ctx context.Context) error {
	attempt := 0
	var last error
	for {
		b, ok := s.q.Peek()
		if !ok {
			return nil
		}
		res, wait, err := s.deliver(ctx, b)
		switch res {
		case delivered, rejected:
			attempt = 0
			continue
		case fatal:
			return err
		}
		last = err
		attempt++
		if !s.sleep(ctx, s.delay(attempt, wait)) {
			if !s.q.Spooled() {
				return fmt.Errorf("%d batch(es) %w: %w", s.q.Len(), ErrNotSpooled, last)
			}
			return fmt.Errorf("%d batches left in the spool: %w", s.q.Len(), last)
		}
	}
}

// inFlightGrace is how long a push already on the wire may outlive the caller's cancellation: cut
// off after the server stored the batch but before it answered, the batch would be sent twice.
const inFlightGrace = 3 * time.Second

// push sends one batch, letting it finish within inFlightGrace of ctx's cancellation. Samples of
// series the API has handed back ids for go by id; if the API refuses the ids (a store that does
// not know them, a server that predates them), they are forgotten and the batch goes again as it
// was spooled, by name.
func (s *Sender) push(ctx context.Context, body []byte) error {
	pushCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(inFlightGrace, cancel) })
	defer stop()
	p := s.series.plan(body)
	res, err := s.p.PushGzip(pushCtx, p.body)
	if err != nil && p.byID > 0 && refusedAsSent(err) {
		s.opts.Log.Info("the API refused the batch's series ids; sending it by name", "err", err)
		s.series.forget()
		p.body, p.keys = body, p.whole
		res, err = s.p.PushGzip(pushCtx, body)
	}
	if err == nil {
		s.series.learn(p.keys, res.SeriesIDs)
	}
	return err
}

// refusedAsSent reports whether the API refused a push for what it held (a 4xx other than the
// token's, the rate limits' and a timeout), which the same batch sent by name may not be.
func refusedAsSent(err error) bool {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return apiErr.Status >= 400 && apiErr.Status < 500
}

// deliver makes one attempt at b and settles it in the queue. wait is the server's Retry-After.
func (s *Sender) deliver(ctx context.Context, b buffer.Batch) (outcome, time.Duration, error) {
	err := s.push(ctx, b.Body)
	if err == nil {
		if ackErr := s.q.Ack(b.Seq); ackErr != nil {
			s.opts.Log.Error("acknowledge delivered batch", "err", ackErr)
		}
		s.delivered.Add(1)
		return delivered, 0, nil
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.Status == http.StatusUnauthorized:
			_ = s.q.Spill()
			return fatal, 0, fmt.Errorf("%w: %v", ErrUnauthorized, apiErr)
		case apiErr.Status == http.StatusForbidden:
			_ = s.q.Spill()
			return fatal, 0, fmt.Errorf("%w: %v", ErrForbidden, apiErr)
		case apiErr.Status >= 400 && apiErr.Status < 500 &&
			apiErr.Status != http.StatusRequestTimeout && apiErr.Status != http.StatusTooManyRequests:
			reason := fmt.Sprintf("%s: %v", time.Now().UTC().Format(time.RFC3339), apiErr)
			if rejErr := s.q.Reject(b.Seq, reason); rejErr != nil {
				s.opts.Log.Error("set rejected batch aside", "err", rejErr)
			}
			s.rejected.Add(1)
			kept := "it was moved to the spool's rejected/ folder"
			if !s.q.Spooled() {
				kept = "there is no spool to keep it in"
			}
			s.opts.Log.Error("the API rejected a batch as malformed; "+kept,
				"status", apiErr.Status, "code", apiErr.Code, "message", apiErr.Message, "seq", b.Seq,
				"collected_at", b.CreatedAt)
			return rejected, 0, nil
		}
	}
	s.failures.Add(1)
	// From the first failure on, the outage is on disk: a crash now loses nothing.
	if spillErr := s.q.Spill(); spillErr != nil {
		s.opts.Log.Error("spill to disk", "err", spillErr)
	}
	var retryAfter time.Duration
	if apiErr != nil {
		retryAfter = apiErr.RetryAfter
	}
	return retry, retryAfter, err
}

// delay is how long to wait before the next attempt after the attempt-th failure in a row: the
// backoff, or the server's Retry-After (capped at MaxRetryAfter) when that is longer. A Retry-After
// that wins gets up to 10 % more, at random: the API tells every collector it turns away the same
// value, and they should not all come back in the same instant.
func (s *Sender) delay(attempt int, retryAfter time.Duration) time.Duration {
	d := s.backoff(attempt)
	if retryAfter = min(retryAfter, MaxRetryAfter); retryAfter > d {
		d = retryAfter
		if spread := retryAfter / 10; spread > 0 {
			d += s.randN(spread + 1)
		}
	}
	return d
}

// backoff is exponential in attempt (MinBackoff doubling up to MaxBackoff) with "equal jitter":
// half the step fixed, half random, so collectors that lost the API together do not come back in
// lockstep.
func (s *Sender) backoff(attempt int) time.Duration {
	return backoff.Jitter(backoff.Step(s.opts.MinBackoff, s.opts.MaxBackoff, attempt), s.randN)
}
