package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/server/store"
)

// statsBoundsMs are the upper bounds of the latency buckets the per-minute p95 is estimated from.
var statsBoundsMs = []float64{1, 2, 3, 5, 7.5, 10, 15, 20, 25, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2500, 5000, 10000, 30000}

// minute accumulates one minute of this server's requests.
type minute struct {
	start                                                       time.Time
	requests, rateLimited, authFailures, serverErrors, dbErrors int64
	buckets                                                     []int64 // len(statsBoundsMs)+1; the last is overflow
}

func (m *minute) p95() float64 {
	var timed int64
	for _, n := range m.buckets {
		timed += n
	}
	if timed == 0 {
		return 0
	}
	rank := 0.95 * float64(timed)
	var seen float64
	for i, n := range m.buckets {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lower := 0.0
			if i > 0 {
				lower = statsBoundsMs[i-1]
			}
			if i == len(statsBoundsMs) {
				return lower // overflow bucket: report its lower bound
			}
			return lower + (statsBoundsMs[i]-lower)*(rank-seen)/float64(n)
		}
		seen += float64(n)
	}
	return statsBoundsMs[len(statsBoundsMs)-1]
}

// requestStats keeps the current minute and the finished ones not yet stored (bounded, oldest
// dropped, so a long database outage cannot grow memory).
type requestStats struct {
	mu       sync.Mutex
	cur      *minute
	finished []store.RequestStats
}

const maxPendingMinutes = 60

func newRequestStats() *requestStats { return &requestStats{} }

func (m *minute) row() store.RequestStats {
	return store.RequestStats{
		Minute: m.start, Requests: m.requests, RateLimited: m.rateLimited, AuthFailures: m.authFailures,
		ServerErrors: m.serverErrors, DBErrors: m.dbErrors, DurationP95Ms: m.p95(),
	}
}

func (s *requestStats) keepPending(rows []store.RequestStats) {
	s.finished = rows
	if len(s.finished) > maxPendingMinutes {
		s.finished = s.finished[len(s.finished)-maxPendingMinutes:]
	}
}

// at returns the accumulator for now's minute, rolling the previous one over. Callers hold mu.
func (s *requestStats) at(now time.Time) *minute {
	start := now.UTC().Truncate(time.Minute)
	if s.cur != nil && !s.cur.start.Before(start) {
		return s.cur // the current minute (or, if the clock stepped back, the newest one)
	}
	if s.cur != nil {
		s.keepPending(append(s.finished, s.cur.row()))
	}
	s.cur = &minute{start: start, buckets: make([]int64, len(statsBoundsMs)+1)}
	return s.cur
}

// observe counts a finished request; timed is false for the event stream, whose duration is the
// client's viewing time, not a response time, and must not weigh on the p95.
func (s *requestStats) observe(now time.Time, d time.Duration, status int, timed bool) {
	ms := float64(d.Microseconds()) / 1000
	i := sort.SearchFloat64s(statsBoundsMs, ms)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.at(now)
	m.requests++
	if timed {
		m.buckets[i]++
	}
	if status >= 500 {
		m.serverErrors++
	}
}

func (s *requestStats) rateLimited(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at(now).rateLimited++
}

func (s *requestStats) authFailure(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at(now).authFailures++
}

func (s *requestStats) dbError(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at(now).dbErrors++
}

// take returns the finished minutes plus the running one (so alerts see the present; the store
// replaces a minute's row on every flush) as rows of server.
func (s *requestStats) take(now time.Time, server string) (finished []store.RequestStats, running store.RequestStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running = s.at(now).row()
	running.Server = server
	finished = s.finished
	s.finished = nil
	for i := range finished {
		finished[i].Server = server
	}
	return finished, running
}

// putBack queues finished rows the store did not take, to be retried at the next flush.
func (s *requestStats) putBack(rows []store.RequestStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepPending(append(rows, s.finished...))
}

// flushStats stores the finished minutes and the running one.
func (s *Server) flushStats(ctx context.Context, now time.Time) {
	finished, running := s.stats.take(now, s.name)
	for i, row := range finished {
		if err := s.store.RecordRequestStats(ctx, row); err != nil {
			s.dbError(ctx, "record_request_stats", err)
			s.stats.putBack(finished[i:])
			return
		}
	}
	if running.Requests+running.RateLimited+running.AuthFailures+running.DBErrors == 0 {
		return
	}
	if err := s.store.RecordRequestStats(ctx, running); err != nil {
		s.dbError(ctx, "record_request_stats", err)
	}
}
