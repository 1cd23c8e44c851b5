package server

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// soakMinute is one minute of the soak: the server's memory and goroutines at its end, the store's
// size, and the pushes of the minute.
type soakMinute struct {
	at              time.Duration
	rssMiB, heapMiB float64
	goroutines      float64
	storeMiB        float64
	load1           float64 // the machine's 1-minute load average
	pushes, failed  int
	latencies       []time.Duration
}

// BenchmarkSoak runs 1,000 simulated collectors (50 samples every 10 s each, fresh timestamps on
// every push) against one API server for PGANALYTICS_SOAK_DURATION (`make soak`: 1h; skipped
// without it) and prints, every minute, the server's RSS, Go heap and goroutines and the store's
// size; then push p95 per 10 minutes and the verdicts: RSS growth after the first 10 minutes
// < 10 %, no goroutine growth, store growth linear in time.
func BenchmarkSoak(b *testing.B) {
	raw := os.Getenv("PGANALYTICS_SOAK_DURATION")
	if raw == "" {
		b.Skip("set PGANALYTICS_SOAK_DURATION (make soak)")
	}
	duration, err := time.ParseDuration(raw)
	if err != nil || duration < 2*time.Minute {
		b.Fatalf("PGANALYTICS_SOAK_DURATION %q: want a duration of at least 2m", raw)
	}
	const collectors, samples, interval = 1000, 50, 10 * time.Second
	s := startBenchServer(b)
	regs := s.register(b, &http.Client{Timeout: time.Minute}, collectors)
	conn, err := pgx.Connect(b.Context(), s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(b.Context())

	for b.Loop() {
		var (
			mu      sync.Mutex
			current = &soakMinute{}
			minutes []*soakMinute
			wg      sync.WaitGroup
			stop    atomic.Bool
		)
		start := time.Now()
		for i, reg := range regs {
			wg.Go(func() {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
				defer client.CloseIdleConnections()
				next := time.Now().Add(rand.N(interval))
				for !stop.Load() {
					time.Sleep(time.Until(next))
					p := benchPush(i, samples)
					p.CollectedAt = time.Now().UTC()
					p.Snapshot.CollectedAt = p.CollectedAt
					body := gzipJSON(b, p)
					t0 := time.Now()
					err := push(client, s.url, reg.Token, body)
					d := time.Since(t0)
					mu.Lock()
					current.pushes++
					if err != nil {
						current.failed++
					} else {
						current.latencies = append(current.latencies, d)
					}
					mu.Unlock()
					next = next.Add(interval)
				}
			})
		}
		fmt.Printf("soak: %d collectors × %d samples every %s for %s\n", collectors, samples, interval, duration)
		fmt.Printf("%8s %9s %9s %10s %10s %8s %7s %9s %6s\n", "minute", "rss-MiB", "heap-MiB", "goroutines", "store-MiB", "pushes", "failed", "p95-ms", "load1")
		tick := time.NewTicker(time.Minute)
		for range tick.C {
			m := s.soakSample(b, conn)
			mu.Lock()
			m.pushes, m.failed, m.latencies = current.pushes, current.failed, current.latencies
			current = &soakMinute{}
			mu.Unlock()
			m.at = time.Since(start).Round(time.Minute)
			minutes = append(minutes, m)
			fmt.Printf("%8.0f %9.1f %9.1f %10.0f %10.1f %8d %7d %9.2f %6.2f\n", m.at.Minutes(), m.rssMiB, m.heapMiB, m.goroutines,
				m.storeMiB, m.pushes, m.failed, p95ms(m.latencies), m.load1)
			if time.Since(start) >= duration {
				break
			}
		}
		tick.Stop()
		stop.Store(true)
		wg.Wait()
		soakReport(b, minutes)
	}
}

// soakSample reads the server's /metrics and the store's size.
func (s *benchServer) soakSample(b *testing.B, conn *pgx.Conn) *soakMinute {
	b.Helper()
	m := &soakMinute{}
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			m.rssMiB = f / (1 << 20)
		case "go_memstats_heap_inuse_bytes":
			m.heapMiB = f / (1 << 20)
		case "go_goroutines":
			m.goroutines = f
		}
	}
	var size float64
	if err := conn.QueryRow(b.Context(), `SELECT pg_database_size(current_database())::float8`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	m.storeMiB = size / (1 << 20)
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			m.load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

func p95ms(lat []time.Duration) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(0.95*float64(len(s))))].Microseconds()) / 1000
}

// soakReport prints push p95 per 10 minutes and the soak's verdicts, and reports them as metrics.
func soakReport(b *testing.B, minutes []*soakMinute) {
	var window []time.Duration
	fmt.Println("push p95 per 10 minutes:")
	for i, m := range minutes {
		window = append(window, m.latencies...)
		if (i+1)%10 == 0 || i == len(minutes)-1 {
			fmt.Printf("  minutes %3d-%3d: p95 %.2f ms over %d pushes\n", (i/10)*10+1, i+1, p95ms(window), len(window))
			window = nil
		}
	}
	var failed, pushes int
	for _, m := range minutes {
		failed += m.failed
		pushes += m.pushes
	}
	// Growth after the first 10 minutes (the warm-up): the last minute against minute 10.
	ref := minutes[min(9, len(minutes)-1)]
	last := minutes[len(minutes)-1]
	rssGrowth := 100 * (last.rssMiB - ref.rssMiB) / ref.rssMiB
	var gmin, gmax float64 = math.Inf(1), 0
	for _, m := range minutes[min(9, len(minutes)-1):] {
		gmin, gmax = min(gmin, m.goroutines), max(gmax, m.goroutines)
	}
	// Linearity: R² of the store size against time over the whole run.
	xs, ys := make([]float64, len(minutes)), make([]float64, len(minutes))
	for i, m := range minutes {
		xs[i], ys[i] = m.at.Minutes(), m.storeMiB
	}
	slope, r2 := linearFit(xs, ys)
	fmt.Printf("pushes %d, failed %d\n", pushes, failed)
	fmt.Printf("RSS %.1f MiB at minute %0.f → %.1f MiB at minute %.0f: %+.1f %% (target < 10 %%)\n",
		ref.rssMiB, ref.at.Minutes(), last.rssMiB, last.at.Minutes(), rssGrowth)
	fmt.Printf("goroutines after minute 10: %.0f–%.0f\n", gmin, gmax)
	fmt.Printf("store growth %.1f MiB/h, R² %.4f against a straight line (linear: ≥ 0.99)\n", slope*60, r2)
	b.ReportMetric(rssGrowth, "rss-growth-%")
	b.ReportMetric(gmax-gmin, "goroutine-spread")
	b.ReportMetric(slope*60, "store-MiB/h")
	b.ReportMetric(r2, "store-R2")
	b.ReportMetric(float64(failed), "failed-pushes")
	if failed > 0 {
		b.Errorf("%d pushes failed", failed)
	}
}

// linearFit is the least-squares slope of y over x and the fit's R².
func linearFit(xs, ys []float64) (slope, r2 float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0
	}
	slope = (n*sxy - sx*sy) / den
	icept := (sy - slope*sx) / n
	var ssRes, ssTot float64
	mean := sy / n
	for i := range xs {
		pred := icept + slope*xs[i]
		ssRes += (ys[i] - pred) * (ys[i] - pred)
		ssTot += (ys[i] - mean) * (ys[i] - mean)
	}
	if ssTot == 0 {
		return slope, 1
	}
	return slope, 1 - ssRes/ssTot
}
