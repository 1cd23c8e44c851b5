package server

// Benchmarks of the real HTTP ingest path into PostgreSQL. The server runs in a child process (this
// test binary re-executed, see TestMain) so that its resident memory is measured alone; the load
// generator stays in the benchmark process. The database is a dedicated cluster with durable
// settings (fsync, synchronous_commit and full_page_writes on), unlike the test harness default.
//
//	make bench   or   go test -run '^$' -bench . -benchtime 1x ./server/
//
// PGANALYTICS_BENCH_DURATION (default 30s) bounds the 1,000-collector latency run;
// PGANALYTICS_BENCH_CPUPROFILE=file writes the server's CPU profile, PGANALYTICS_BENCH_HEAPPROFILE=file
// its heap profile at exit.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/fileutil"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

// benchServerEnv makes the test binary run only a server (the benchmark's child process).
const benchServerEnv = "PGANALYTICS_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		os.Exit(runBenchServer())
	}
	os.Exit(m.Run())
}

// runBenchServer serves like `pganalytics-api serve` on a loopback port it prints as
// "LISTENING host:port", until SIGTERM.
func runBenchServer() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "bench server:", err); return 1 }
	if path := os.Getenv("PGANALYTICS_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("PGANALYTICS_BENCH_HEAPPROFILE"); path != "" {
		defer func() { // the heap as the load left it (at SIGTERM)
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		return fail(err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: cfg.Database.MaxConns, Logger: log})
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	ApplyGCLimits(cfg, os.Getenv) // as pganalytics-api serve does
	srv, err := New(Options{Config: cfg, Store: st, Logger: log, Version: "bench"})
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	if err := srv.Run(ctx, ln); err != nil {
		return fail(err)
	}
	return 0
}

// benchServer is the child process serving the benchmark.
type benchServer struct {
	url, dsn string
	cmd      *exec.Cmd
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	c := pgtest.Start(b,
		pgtest.WithConfig("fsync", "on"), pgtest.WithConfig("synchronous_commit", "on"),
		pgtest.WithConfig("full_page_writes", "on"), pgtest.WithConfig("shared_buffers", "128MB"),
		pgtest.WithConfig("max_wal_size", "1GB"))
	dsn := c.DSN("postgres")
	if _, err := store.Migrate(b.Context(), dsn); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		benchServerEnv+"=1",
		"ENVIRONMENT=development",
		"LISTEN_ADDR=127.0.0.1:0",
		"DATABASE_URL="+dsn,
		"JWT_SECRET_KEY="+testJWTSecret,
		"REGISTRATION_SECRET="+testRegistrationSecret,
		"RATE_LIMIT_PER_MINUTE=1000000",
	)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{cmd: cmd, dsn: dsn}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LISTENING ") {
		b.Fatalf("bench server did not start: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	s.url = "http://" + strings.TrimSpace(strings.TrimPrefix(line, "LISTENING "))
	return s
}

// rssMiB reads the child's current and peak resident set size.
func (s *benchServer) rssMiB(b *testing.B) (current, peak float64) {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			current = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return current, peak
}

// resetPeak restarts the child's peak resident set size (VmHWM) from its current size, so that
// the peak reported is the measured load's, not the registrations' (argon2id) before it.
func (s *benchServer) resetPeak(b *testing.B) {
	b.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// sampleRSS reads the child's resident set size every second over the second half of the next
// d, and sends the samples (MiB) when done.
func (s *benchServer) sampleRSS(b *testing.B, d time.Duration) <-chan []float64 {
	out := make(chan []float64, 1)
	go func() {
		var samples []float64
		time.Sleep(d / 2)
		for end := time.Now().Add(d / 2); time.Now().Before(end); time.Sleep(time.Second) {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", s.cmd.Process.Pid))
			if f := strings.Fields(string(raw)); err == nil && len(f) > 1 {
				pages, _ := strconv.ParseFloat(f[1], 64)
				samples = append(samples, pages*float64(os.Getpagesize())/(1<<20))
			}
		}
		if len(samples) == 0 {
			samples = []float64{0}
		}
		out <- samples
	}()
	return out
}

// cpuSeconds reads the child's process_cpu_seconds_total from its own /metrics.
func (s *benchServer) cpuSeconds(b *testing.B) float64 {
	b.Helper()
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatal("no process_cpu_seconds_total in /metrics")
	return 0
}

func (s *benchServer) register(b *testing.B, client *http.Client, n int) []api.RegisterResponse {
	b.Helper()
	out := make([]api.RegisterResponse, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			body, _ := json.Marshal(api.RegisterRequest{Name: fmt.Sprintf("bench-%04d", i), Hostname: fmt.Sprintf("host-%04d", i)})
			hr, _ := http.NewRequest("POST", s.url+"/api/v1/collectors/register", bytes.NewReader(body))
			hr.Header.Set("X-Registration-Secret", testRegistrationSecret)
			res, err := client.Do(hr)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("register: %d", res.StatusCode)
				return
			}
			errs <- json.NewDecoder(res.Body).Decode(&out[i])
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// benchPush is a push of n samples (distinct series per collector) with a snapshot and status, as
// a collector sends them; benchBody is its gzip JSON body.
func benchPush(collector, n int) api.PushRequest {
	p := snapshotPush(fmt.Sprintf("70000000000%08d", collector))
	p.Metrics = p.Metrics[:0]
	for i := range n {
		p.Metrics = append(p.Metrics, api.Sample{
			Name:   "pg_replication_replay_lag_bytes",
			Value:  float64(i * 1024),
			Labels: map[string]string{"instance": fmt.Sprintf("db%d:5432", collector), "application_name": fmt.Sprintf("standby%d", i)},
		})
	}
	return p
}

func benchBody(b *testing.B, collector, n int) []byte {
	b.Helper()
	return gzipJSON(b, benchPush(collector, n))
}

// BenchmarkDecodePush is the decoding and validation of one 500-sample push body (already
// gunzipped) alone: the largest part of the server's CPU per push in BenchmarkIngestThroughput's
// profile (PGANALYTICS_BENCH_CPUPROFILE).
func BenchmarkDecodePush(b *testing.B) {
	const batch = 500
	raw, err := json.Marshal(benchPush(0, batch))
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	lim := pushLimits{maxSamples: cfg.Limits.PushMaxSamples, now: time.Now(), retention: cfg.Database.Retention.D()}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, herr := decodePush(bytes.NewReader(raw), lim); herr != nil {
			b.Fatal(herr)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
}

func push(client *http.Client, url, token string, body []byte) error {
	_, err := pushFor(client, url, token, body)
	return err
}

// pushFor pushes a gzip JSON body and returns the server's answer.
func pushFor(client *http.Client, url, token string, body []byte) (api.PushResponse, error) {
	var out api.PushResponse
	hr, err := http.NewRequest("POST", url+"/api/v1/metrics/push", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Content-Encoding", "gzip")
	res, err := client.Do(hr)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		_, _ = io.Copy(io.Discard, res.Body)
		return out, fmt.Errorf("push: status %d", res.StatusCode)
	}
	return out, json.NewDecoder(res.Body).Decode(&out)
}

// byIDBody is the collector's steady-state body for benchPush(collector, n): the same samples,
// snapshot and status, the samples by the series ids the first push by name handed back.
func byIDBody(b *testing.B, collector, n int, ids []int64) []byte {
	b.Helper()
	p := benchPush(collector, n)
	if len(ids) != len(p.Metrics) {
		b.Fatalf("%d series ids for %d samples", len(ids), len(p.Metrics))
	}
	p.ByID = &api.SeriesSamples{SeriesIDs: ids}
	for _, m := range p.Metrics {
		p.ByID.Values = append(p.ByID.Values, m.Value)
	}
	p.Metrics = nil
	return gzipJSON(b, p)
}

// BenchmarkIngestThroughput pushes gzip JSON batches of 500 samples from 8 concurrent clients (8
// collectors) through HTTP into PostgreSQL and, alternately, has 8 concurrent connections COPY the
// very rows those pushes store straight into the same samples table, so that both see the same
// machine load. It reports both rates and their ratio: the share of the database's raw COPY rate
// that the whole HTTP path (auth, gzip, JSON, validation, series lookup, status, snapshot,
// transaction) keeps. An op is one round: 10 pushes per client, then 10 COPYs per connection.
// encoding=names pushes the samples by name and labels (a collector's first push), encoding=ids
// by the series ids that push handed back (its steady state).
func BenchmarkIngestThroughput(b *testing.B) {
	const batch, clients, rounds = 500, 8, 10
	s := startBenchServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	regs := s.register(b, client, clients)
	byName, byID := make([][]byte, clients), make([][]byte, clients)
	for i := range byName {
		byName[i] = benchBody(b, i, batch)
		res, err := pushFor(client, s.url, regs[i].Token, byName[i]) // creates the series
		if err != nil {
			b.Fatal(err)
		}
		byID[i] = byIDBody(b, i, batch, res.SeriesIDs)
	}
	ctx := b.Context()
	pcfg, err := pgxpool.ParseConfig(s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	pcfg.MaxConns = clients
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	rows := make([][][]any, clients) // per collector, the rows its warm-up push stored
	for i, reg := range regs {
		r, err := pool.Query(ctx, `SELECT "timestamp", collector_id, series_id, value FROM samples WHERE collector_id = $1`, reg.CollectorID)
		if err == nil {
			rows[i], err = pgx.CollectRows(r, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		}
		if err != nil || len(rows[i]) != batch {
			b.Fatalf("stored rows of collector %d: %d, %v", i, len(rows[i]), err)
		}
	}
	cols := []string{"timestamp", "collector_id", "series_id", "value"}
	for _, enc := range []struct {
		name   string
		bodies [][]byte
	}{{"names", byName}, {"ids", byID}} {
		bodies := enc.bodies
		b.Run(fmt.Sprintf("encoding=%s/batch=%d/clients=%d", enc.name, batch, clients), func(b *testing.B) {
			var httpTime, copyTime time.Duration
			s.resetPeak(b)
			for b.Loop() {
				httpTime += concurrently(b, clients, rounds, func(i int) error {
					return push(client, s.url, regs[i].Token, bodies[i])
				})
				copyTime += concurrently(b, clients, rounds, func(i int) error {
					_, err := pool.CopyFrom(ctx, pgx.Identifier{"samples"}, cols, pgx.CopyFromRows(rows[i]))
					return err
				})
			}
			samples := float64(b.N * rounds * clients * batch)
			b.ReportMetric(samples/httpTime.Seconds(), "samples/s")
			b.ReportMetric(samples/copyTime.Seconds(), "copy-samples/s")
			b.ReportMetric(copyTime.Seconds()/httpTime.Seconds(), "http/copy")
			b.ReportMetric(float64(len(bodies[0])), "gzip-bytes/push")
			rss, peak := s.rssMiB(b)
			b.ReportMetric(rss, "server-rss-MiB")
			b.ReportMetric(peak, "server-peak-rss-MiB")
		})
	}
}

// concurrently runs fn rounds times on each of n goroutines (fn gets the goroutine's index) and
// returns the wall time until the last one finished.
func concurrently(b *testing.B, n, rounds int, fn func(i int) error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for range rounds {
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPushLatency1000Collectors simulates 1,000 collectors each pushing 50 samples every 10 s
// (100 pushes/s in aggregate, each collector on its own keep-alive connection, start times spread
// over the interval) for PGANALYTICS_BENCH_DURATION, after one warm-up push each (series created,
// their ids handed back: the pushes then are by id, as a collector's are), and reports push latency percentiles and the server's CPU (percent of one core) and resident
// memory under that load.
func BenchmarkPushLatency1000Collectors(b *testing.B) {
	const collectors, samples, interval = 1000, 50, 10 * time.Second
	duration := 30 * time.Second
	if v := os.Getenv("PGANALYTICS_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PGANALYTICS_BENCH_DURATION: %v", err)
		}
		duration = d
	}
	s := startBenchServer(b)
	regs := s.register(b, &http.Client{Timeout: time.Minute}, collectors)
	bodies := make([][]byte, collectors)
	// Warm-up: every collector pushes once, so its series exist (the steady state of a fleet).
	warm := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var warmErrs atomic.Int64
	for i, reg := range regs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := pushFor(warm, s.url, reg.Token, benchBody(b, i, samples))
			if err != nil {
				warmErrs.Add(1)
				return
			}
			bodies[i] = byIDBody(b, i, samples, res.SeriesIDs)
		})
	}
	wg.Wait()
	if n := warmErrs.Load(); n > 0 {
		b.Fatalf("%d warm-up pushes failed", n)
	}
	b.Run(fmt.Sprintf("collectors=%d/samples=%d/every=%s/for=%s", collectors, samples, interval, duration), func(b *testing.B) {
		for b.Loop() {
			s.resetPeak(b)
			cpu0 := s.cpuSeconds(b)
			rssDuring := s.sampleRSS(b, duration)
			lat, errs := simulateFleet(regs, bodies, s.url, interval, duration)
			cpu := s.cpuSeconds(b) - cpu0
			during := <-rssDuring
			if errs > 0 {
				b.Errorf("%d pushes failed", errs)
			}
			if len(lat) == 0 {
				b.Fatal("no pushes")
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(len(lat))/duration.Seconds(), "pushes/s")
			b.ReportMetric(100*cpu/duration.Seconds(), "server-cpu-%core")
			rss, peak := s.rssMiB(b)
			b.ReportMetric(rss, "server-rss-MiB")
			b.ReportMetric(peak, "server-peak-rss-MiB")
			// Once the fleet is under way (the warm-up's garbage returned to the system), the
			// resident set second by second: the median and the highest.
			slices.Sort(during)
			b.ReportMetric(during[len(during)/2], "server-rss-median-MiB")
			b.ReportMetric(during[len(during)-1], "server-rss-max-MiB")
			if path := os.Getenv("PGANALYTICS_BASELINE_FILE"); path != "" {
				s.writeBaseline(b, path, runbook.Sample{
					At: time.Now().UTC(), APICPU: cpu / duration.Seconds(), APIRSSBytes: rss * (1 << 20),
					P50Seconds: pct(0.50) / 1000, P95Seconds: pct(0.95) / 1000, P99Seconds: pct(0.99) / 1000,
					Requests: float64(len(lat) + errs), ErrorRate: float64(errs) / float64(len(lat)+errs),
					CollectorSuccess: float64(len(lat)) / float64(len(lat)+errs),
				})
			}
		}
	})
}

// writeBaseline completes the load test's figures with the store's (the plan's validation SQL
// timed, the database size) and writes them as the baseline file `pgactl runbook watch
// --baseline` compares production with.
func (s *benchServer) writeBaseline(b *testing.B, path string, sample runbook.Sample) {
	b.Helper()
	conn, err := pgx.Connect(b.Context(), s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(b.Context())
	start := time.Now()
	rows, err := conn.Query(b.Context(), runbook.ValidationSQL)
	if err == nil {
		for rows.Next() {
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		b.Fatalf("validation SQL: %v", err)
	}
	sample.QuerySeconds = time.Since(start).Seconds()
	if err := conn.QueryRow(b.Context(), `SELECT pg_database_size(current_database())::float8`).Scan(&sample.DatabaseBytes); err != nil {
		b.Fatal(err)
	}
	data, err := json.MarshalIndent(sample, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := fileutil.WriteAtomic(path, append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("load-test baseline written to %s", path)
}

// simulateFleet runs every collector's push loop until duration has passed and returns the
// latencies of the pushes and the number that failed.
func simulateFleet(regs []api.RegisterResponse, bodies [][]byte, url string, interval, duration time.Duration) ([]time.Duration, int) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	end := time.Now().Add(duration)
	for i, reg := range regs {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			next := time.Now().Add(rand.N(interval))
			for next.Before(end) {
				time.Sleep(time.Until(next))
				start := time.Now()
				err := push(client, url, reg.Token, bodies[i])
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				next = next.Add(interval)
			}
		})
	}
	wg.Wait()
	return lat, errs
}
