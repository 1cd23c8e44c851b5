package runbook

import (
	"strings"
	"testing"
	"time"
)

// TestWatchFindings: the trends and the baseline comparison a watch flags.
func TestWatchFindings(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	rounds := func(rss, db []float64) []WatchRound {
		var out []WatchRound
		for i := range rss {
			out = append(out, WatchRound{N: i + 1, Sample: Sample{At: t0.Add(time.Duration(i) * 15 * time.Minute),
				APIRSSBytes: rss[i], DatabaseBytes: db[i], P95Seconds: 0.01, Requests: 100, CollectorSuccess: 1}})
		}
		return out
	}
	const mib = 1 << 20
	steady := []float64{50 * mib, 51 * mib, 50 * mib, 51 * mib, 50 * mib}
	linear := []float64{100 * mib, 110 * mib, 120 * mib, 130 * mib, 140 * mib}
	tests := []struct {
		name     string
		rounds   []WatchRound
		baseline *Sample
		want     []string
	}{
		{"steady", rounds(steady, linear), nil, nil},
		{"too few rounds for a trend", rounds([]float64{50 * mib, 60 * mib, 70 * mib}, linear[:3]), nil, nil},
		{"rss grows round after round", rounds([]float64{50 * mib, 55 * mib, 62 * mib, 70 * mib, 80 * mib}, linear), nil, []string{"API RSS grew in each of the last 4 rounds"}},
		{"a fresh server warming up", rounds([]float64{44 * mib, 45 * mib, 46 * mib, 48 * mib, 49 * mib}, linear), nil, nil},
		{"database growth accelerates", rounds(steady, []float64{100 * mib, 110 * mib, 120 * mib, 130 * mib, 170 * mib}), nil, []string{"database growth not linear"}},
		{"p95 twice the baseline", rounds(steady, linear), &Sample{P95Seconds: 0.004, APIRSSBytes: 50 * mib, CollectorSuccess: 1}, []string{"p95 10ms against the baseline's 4ms"}},
		{"rss far above the baseline", rounds(steady, linear), &Sample{P95Seconds: 0.01, APIRSSBytes: 20 * mib}, []string{"API RSS 50 MiB against the baseline's 20 MiB"}},
		{"as the baseline", rounds(steady, linear), &Sample{P95Seconds: 0.01, APIRSSBytes: 50 * mib, CollectorSuccess: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findings(tt.rounds, tt.baseline)
			if len(got) != len(tt.want) {
				t.Fatalf("findings %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("finding %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}
