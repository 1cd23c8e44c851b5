package ratelimit

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestGCRAMatchesTokenBucket replays random request times through the GCRA and through Limiter's
// token bucket: the same decisions, remaining tokens and waits.
func TestGCRAMatchesTokenBucket(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perMinute int
		meanGap   time.Duration // between requests: below the emission interval empties the bucket
	}{
		{"1 per minute", 1, 20 * time.Second},
		{"60 per minute, bursts", 60, 300 * time.Millisecond},
		{"100 per minute, near the rate", 100, 550 * time.Millisecond},
		{"100 per minute, long gaps", 100, 700 * time.Millisecond},
		{"1000 per minute", 1000, 40 * time.Millisecond},
		{"6000 per minute", 6000, 8 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.perMinute)))
			g := NewGCRA(tc.perMinute)
			l := New(tc.perMinute, 10)
			now := time.Unix(1_700_000_000, 0)
			var tat time.Time
			admitted, requests := 0, 5000+4*tc.perMinute
			for i := range requests {
				if rng.IntN(4) > 0 { // mostly bursts, sometimes a pause
					now = now.Add(time.Duration(rng.Int64N(int64(tc.meanGap) * 2)))
				}
				want := l.Allow("k", now)
				var got Decision
				tat, got = g.Take(tat, now)
				if got.Allowed != want.Allowed || got.Remaining != want.Remaining || got.Limit != want.Limit ||
					absDuration(got.RetryAfter-want.RetryAfter) > time.Microsecond {
					t.Fatalf("request %d at +%s: GCRA %+v, token bucket %+v", i, now.Sub(time.Unix(1_700_000_000, 0)), got, want)
				}
				if got.Allowed {
					admitted++
				}
			}
			if admitted == 0 || admitted == requests {
				t.Fatalf("admitted %d of %d: the case tests nothing", admitted, requests)
			}
		})
	}
}

func TestGCRA(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		at        time.Duration // after t0
		allowed   bool
		remaining int
		retry     time.Duration
	}
	for _, tc := range []struct {
		name      string
		perMinute int
		steps     []step
	}{
		{"burst of one", 1, []step{
			{0, true, 0, 0},
			{0, false, 0, time.Minute},
			{59 * time.Second, false, 0, time.Second},
			{time.Minute, true, 0, 0},
		}},
		{"refusals leave the bucket alone", 2, []step{
			{0, true, 1, 0},
			{0, true, 0, 0},
			{time.Second, false, 0, 29 * time.Second},
			{2 * time.Second, false, 0, 28 * time.Second},
			{30 * time.Second, true, 0, 0},
			{10 * time.Minute, true, 1, 0}, // full again after idling
		}},
		{"7 per minute rounds the interval to the microsecond", 7, []step{
			{0, true, 6, 0},
			{0, true, 5, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGCRA(tc.perMinute)
			var tat time.Time
			for i, s := range tc.steps {
				var d Decision
				tat, d = g.Take(tat, t0.Add(s.at))
				if d.Allowed != s.allowed || d.Remaining != s.remaining || d.RetryAfter != s.retry || d.Limit != tc.perMinute {
					t.Fatalf("step %d at +%s: %+v, want allowed %v remaining %d retry %s", i, s.at, d, s.allowed, s.remaining, s.retry)
				}
			}
		})
	}
	if g := NewGCRA(7); g.Emission != 8571429*time.Microsecond || g.Tolerance != 7*g.Emission {
		t.Fatalf("7 per minute: %+v", g)
	}
	if g := NewGCRA(0); g.PerMinute != 1 || g.Emission != time.Minute {
		t.Fatalf("0 per minute: %+v", g)
	}
}

func TestGCRARefusedWithoutTAT(t *testing.T) {
	g := NewGCRA(100)
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		tat  time.Time
		want time.Duration
	}{
		{"exact", now.Add(g.Tolerance - 200*time.Millisecond), 400 * time.Millisecond},
		{"unknown", time.Time{}, g.Emission},
		{"stale snapshot", now, g.Emission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := g.Refused(tc.tat, now); d.Allowed || d.RetryAfter != tc.want || d.Remaining != 0 {
				t.Fatalf("%+v, want retry %s", d, tc.want)
			}
		})
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
