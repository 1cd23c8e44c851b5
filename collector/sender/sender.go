// Package sender delivers queued batches to the API, oldest first: exponential backoff with jitter
// while the API is away (honouring Retry-After), malformed batches set aside, a revoked token fatal.
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
)

// Pusher is the API call the sender needs (client.Client implements it).
type Pusher interface {
	PushGzip(ctx context.Context, gzippedJSON []byte) (api.PushResponse, error)
}

// ErrUnauthorized means the API refused the collector token: it was revoked or never valid.
// Retrying cannot help; a person has to register the collector again.
var ErrUnauthorized = errors.New("the API refused the collector token (401): it was revoked or is invalid; run `pganalytics register` again")

// ErrNotSpooled is Flush's error on a queue without a spool (buffer.NewMemory): what was not
// delivered was not kept anywhere either.
var ErrNotSpooled = errors.New("not delivered and not spooled")

// ErrRejected is what --once reports when the API refused its batch as malformed (4xx): the batch
// is set aside (rejected/ in the spool) rather than retried.
var ErrRejected = errors.New("the API rejected the batch as malformed")

// Options tune retries.
type Options struct {
	MinBackoff time.Duration // first retry delay (default 1s)
	MaxBackoff time.Duration // cap (default 1m)
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
	delivered atomic.Int64
	failures  atomic.Int64
	rejected  atomic.Int64
}

// New returns a Sender for q.
func New(q *buffer.Queue, p Pusher, opts Options) *Sender {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(opts.MinBackoff, time.Minute)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Sender{q: q, p: p, opts: opts}
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
func (s *Sender) Run(ctx context.Context) error {
	attempt := 0
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
			attempt = 0
			continue
		case fatal:
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		d := max(s.backoff(attempt), wait)
		s.opts.Log.Warn("push failed; batches are spooled and retried", "err", err, "attempt", attempt,
			"retry_in", d.Round(time.Millisecond), "queued", s.q.Len())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Flush delivers until the queue is empty (nil) or ctx ends (the error says what is left): used by
// --once and at shutdown. Failed attempts are retried with the same backoff as Run.
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
			continue
		case fatal:
			return err
		}
		last = err
		attempt++
		t := time.NewTimer(max(s.backoff(attempt), wait))
		select {
		case <-ctx.Done():
			t.Stop()
			if !s.q.Spooled() {
				return fmt.Errorf("%d batch(es) %w: %w", s.q.Len(), ErrNotSpooled, last)
			}
			return fmt.Errorf("%d batches left in the spool: %w", s.q.Len(), last)
		case <-t.C:
		}
	}
}

// inFlightGrace is how long a push already on the wire may outlive the caller's cancellation: cut
// off after the server stored the batch but before it answered, the batch would be sent twice.
const inFlightGrace = 3 * time.Second

// push sends one batch, letting it finish within inFlightGrace of ctx's cancellation.
func (s *Sender) push(ctx context.Context, body []byte) error {
	pushCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(inFlightGrace, cancel) })
	defer stop()
	_, err := s.p.PushGzip(pushCtx, body)
	return err
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
	var wait time.Duration
	if apiErr != nil {
		wait = apiErr.RetryAfter
	}
	return retry, wait, err
}

// backoff is exponential in attempt with "equal jitter": half the step fixed, half random, so
// collectors that lost the API together do not come back in lockstep.
func (s *Sender) backoff(attempt int) time.Duration {
	step := s.opts.MinBackoff
	for i := 1; i < attempt && step < s.opts.MaxBackoff; i++ {
		step *= 2
	}
	step = min(step, s.opts.MaxBackoff)
	half := step / 2
	return half + rand.N(half+1)
}
