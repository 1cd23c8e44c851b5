package runbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/fileutil"
)

// WatchOptions configure a watch: the phase's automated steps repeated every Every for For.
type WatchOptions struct {
	Phase string
	Every time.Duration
	For   time.Duration
	// Baseline is a Sample file (a load test's, or an earlier watch's RecordBaseline) the rounds are
	// compared with; "" compares with nothing.
	Baseline string
	// RecordBaseline is where the watch writes its baseline (the median of its rounds) at the end.
	RecordBaseline string
}

// Sample is one round's figures: the plan's Phase 4B baseline.
type Sample struct {
	At               time.Time `json:"at"`
	APICPU           float64   `json:"api_cpu"`       // fraction of one core since the previous round
	APIRSSBytes      float64   `json:"api_rss_bytes"` // resident memory now
	P50Seconds       float64   `json:"p50_seconds"`   // request latency since the previous round
	P95Seconds       float64   `json:"p95_seconds"`
	P99Seconds       float64   `json:"p99_seconds"`
	Requests         float64   `json:"requests"`
	ErrorRate        float64   `json:"error_rate"`            // 5xx answers / requests
	QuerySeconds     float64   `json:"query_seconds"`         // the plan's validation SQL
	CollectorSuccess float64   `json:"collector_success"`     // 1 - failed / collections, last 15 minutes
	DatabaseBytes    float64   `json:"database_bytes"`        // pg_database_size of the store
	APIError         string    `json:"api_error,omitempty"`   // why the API figures are missing
	StoreError       string    `json:"store_error,omitempty"` // why the store figures are missing
}

// WatchRound is one round: the run of the phase's steps and its figures.
type WatchRound struct {
	N        int       `json:"n"`
	At       time.Time `json:"at"`
	Run      string    `json:"run"`
	Status   Status    `json:"status"`
	Failed   []string  `json:"failed,omitempty"` // steps that did not succeed, with why
	Sample   Sample    `json:"sample"`
	Findings []string  `json:"findings,omitempty"`
}

// WatchState is a watch as kept in STATE_DIR/watches/ID.json after every round.
type WatchState struct {
	ID        string       `json:"id"`
	Phase     string       `json:"phase"`
	Env       string       `json:"env"`
	Every     Duration     `json:"every"`
	For       Duration     `json:"for"`
	Baseline  string       `json:"baseline_file,omitempty"`
	Record    string       `json:"record_baseline_file,omitempty"`
	Operator  string       `json:"operator"`
	StartedAt time.Time    `json:"started_at"`
	EndsAt    time.Time    `json:"ends_at"`
	Status    Status       `json:"status"`
	Rounds    []WatchRound `json:"rounds"`
	Median    *Sample      `json:"baseline,omitempty"` // the median of the rounds so far
	Findings  []string     `json:"findings,omitempty"` // every finding, once
	last      *scrape      // the previous round's scrape, for rates (not kept)
}

func (s *Store) watchesDir() string            { return filepath.Join(s.Dir, "watches") }
func (s *Store) watchPath(id string) string    { return filepath.Join(s.watchesDir(), id+".json") }
func (s *Store) saveWatch(w *WatchState) error { return writeJSONFile(s.watchPath(w.ID), w) }

// LoadWatch reads a watch.
func (s *Store) LoadWatch(id string) (*WatchState, error) {
	if !runIDRe.MatchString(id) {
		return nil, fmt.Errorf("invalid watch id %q", id)
	}
	raw, err := os.ReadFile(s.watchPath(id))
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", id, err)
	}
	var w WatchState
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("watch %s: %w", id, err)
	}
	return &w, nil
}

// LatestWatch is the most recently started watch.
func (s *Store) LatestWatch() (*WatchState, error) {
	entries, err := os.ReadDir(s.watchesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("no watch yet")
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && runIDRe.MatchString(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no watch yet")
	}
	sort.Strings(ids) // ids start with their UTC start time
	return s.LoadWatch(ids[len(ids)-1])
}

func writeJSONFile(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fileutil.WriteAtomic(path, raw, 0o600)
}

// watchConfirmer lets a round go through: manual steps are a person's checklist (skipped and
// listed), a failed step is recorded and the round goes on, destructive steps never run.
var watchConfirmer = ConfirmerFunc(func(_ context.Context, p Prompt) (Reply, error) {
	return Reply{Decision: Skip}, nil
})

// Watch starts a watch of opts.Phase; onRound sees each round once recorded.
func (e *Engine) Watch(ctx context.Context, opts WatchOptions, onRound func(*WatchState, WatchRound)) (*WatchState, error) {
	if _, _, err := e.rb.Select(Target{Phase: opts.Phase}); err != nil {
		return nil, err
	}
	if opts.Every <= 0 || opts.For < opts.Every {
		return nil, fmt.Errorf("watch: --every must be positive and --for at least --every (got %s, %s)", opts.Every, opts.For)
	}
	now := time.Now().UTC()
	id, err := newRunID(now)
	if err != nil {
		return nil, err
	}
	w := &WatchState{ID: id, Phase: opts.Phase, Env: e.env.Name, Every: Dur(opts.Every), For: Dur(opts.For),
		Baseline: opts.Baseline, Record: opts.RecordBaseline, Operator: e.opts.Operator,
		StartedAt: now, EndsAt: now.Add(opts.For), Status: StatusRunning}
	if err := e.store.saveWatch(w); err != nil {
		return nil, err
	}
	return e.continueWatch(ctx, w, onRound)
}

// ResumeWatch continues a watch that did not end (its process stopped), until its end time.
func (e *Engine) ResumeWatch(ctx context.Context, id string, onRound func(*WatchState, WatchRound)) (*WatchState, error) {
	w, err := e.store.LoadWatch(id)
	if err != nil {
		return nil, err
	}
	if w.Status != StatusRunning && w.Status != StatusInterrupted {
		return w, fmt.Errorf("watch %s is %s", id, w.Status)
	}
	w.Status = StatusRunning
	return e.continueWatch(ctx, w, onRound)
}

func (e *Engine) continueWatch(ctx context.Context, w *WatchState, onRound func(*WatchState, WatchRound)) (*WatchState, error) {
	// One process per watch: a second `watch --resume` is refused while this one runs.
	unlock, err := lockFile(e.store.watchPath(w.ID)+".lock", "watch "+w.ID)
	if err != nil {
		return w, err
	}
	defer unlock()
	opts := e.opts
	opts.Confirmer = watchConfirmer
	opts.OnEvent = nil
	round, err := NewEngine(e.rb, e.env, opts)
	if err != nil {
		return nil, err
	}
	var baseline *Sample
	if w.Baseline != "" {
		if baseline, err = readSample(w.Baseline); err != nil {
			return nil, err
		}
	}
	for {
		if time.Now().After(w.EndsAt) {
			break
		}
		r := WatchRound{N: len(w.Rounds) + 1, At: time.Now().UTC()}
		st, runErr := round.Run(ctx, Target{Phase: w.Phase})
		if ctx.Err() != nil {
			w.Status = StatusInterrupted
			_ = e.store.saveWatch(w)
			return w, ctx.Err()
		}
		if st != nil {
			r.Run, r.Status = st.ID, StatusSucceeded
			for _, s := range st.Steps {
				if s.Kind != KindManual && s.Status != StatusSucceeded {
					r.Status = StatusFailed
					r.Failed = append(r.Failed, s.Step+": "+FirstLine(s.Error))
				}
			}
		} else {
			r.Status, r.Failed = StatusFailed, []string{runErr.Error()}
		}
		r.Sample = e.sample(ctx, w)
		w.Rounds = append(w.Rounds, r)
		median := medianSample(w.Rounds)
		w.Median = &median
		r.Findings = findings(w.Rounds, baseline)
		w.Rounds[len(w.Rounds)-1].Findings = r.Findings
		for _, f := range r.Findings {
			if !slices.Contains(w.Findings, f) {
				w.Findings = append(w.Findings, f)
			}
		}
		if err := e.store.saveWatch(w); err != nil {
			return w, err
		}
		if onRound != nil {
			onRound(w, r)
		}
		next := r.At.Add(w.Every.D())
		if next.After(w.EndsAt) {
			break
		}
		select {
		case <-ctx.Done():
			w.Status = StatusInterrupted
			_ = e.store.saveWatch(w)
			return w, ctx.Err()
		case <-time.After(time.Until(next)):
		}
	}
	w.Status = StatusSucceeded
	for _, r := range w.Rounds {
		if r.Status != StatusSucceeded {
			w.Status = StatusFailed
		}
	}
	if len(w.Findings) > 0 {
		w.Status = StatusFailed
	}
	if w.Record != "" && w.Median != nil {
		if err := writeJSONFile(w.Record, w.Median); err != nil {
			return w, fmt.Errorf("record baseline: %w", err)
		}
	}
	if err := e.store.saveWatch(w); err != nil {
		return w, err
	}
	if w.Status != StatusSucceeded {
		return w, fmt.Errorf("%w: watch %s: %d of %d rounds failed, findings: %s", ErrStepFailed, w.ID, failedRounds(w), len(w.Rounds), orDash(strings.Join(w.Findings, "; ")))
	}
	return w, nil
}

func failedRounds(w *WatchState) int {
	n := 0
	for _, r := range w.Rounds {
		if r.Status != StatusSucceeded {
			n++
		}
	}
	return n
}

// FirstLine is s up to its first line break: an error's summary.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func readSample(path string) (*Sample, error) {
	raw, err := readCapped(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var s Sample
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return &s, nil
}

// sample measures a round's figures from the environment's API_URL and DATABASE_URL.
func (e *Engine) sample(ctx context.Context, w *WatchState) Sample {
	s := Sample{At: time.Now().UTC()}
	probe := &Step{URL: "${API_URL}", Database: "${DATABASE_URL}"}
	if c, err := e.apiClient(probe); err != nil {
		s.APIError = err.Error()
	} else if cur, err := scrapeMetrics(ctx, c, ""); err != nil {
		s.APIError = err.Error()
	} else {
		s.APIRSSBytes = gauge(cur, "process_resident_memory_bytes")
		var prev scrape // the first round: rates since the server started
		if w.last != nil {
			prev = *w.last
		}
		if !prev.at.IsZero() {
			if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 {
				s.APICPU = (gauge(cur, "process_cpu_seconds_total") - gauge(prev, "process_cpu_seconds_total")) / dt
			}
		}
		before, after := []map[float64]float64{requestBuckets(prev)}, []map[float64]float64{requestBuckets(cur)}
		s.P50Seconds, s.Requests = quantileOfDelta(0.50, before, after)
		s.P95Seconds, _ = quantileOfDelta(0.95, before, after)
		s.P99Seconds, _ = quantileOfDelta(0.99, before, after)
		if s.Requests > 0 {
			s.ErrorRate = (serverErrors(cur) - serverErrors(prev)) / s.Requests
		}
		w.last = &cur
	}
	conn, _, err := e.connect(ctx, probe.databaseRef())
	if err != nil {
		s.StoreError = err.Error()
		return s
	}
	defer closeConn(conn)
	began := time.Now()
	if rows, err := conn.Query(ctx, ValidationSQL); err != nil {
		s.StoreError = err.Error()
	} else {
		for rows.Next() {
		}
		rows.Close()
		s.QuerySeconds = time.Since(began).Seconds()
	}
	var failed, collections float64
	if err := conn.QueryRow(ctx, `
		SELECT coalesce(sum(f), 0), coalesce(sum(c), 0) FROM (
			SELECT max(value) FILTER (WHERE name = 'pganalytics_collector_collection_failures_total')
			     - min(value) FILTER (WHERE name = 'pganalytics_collector_collection_failures_total') AS f,
			       max(value) FILTER (WHERE name = 'pganalytics_collector_collections_total')
			     - min(value) FILTER (WHERE name = 'pganalytics_collector_collections_total') AS c
			FROM metrics WHERE timestamp > now() - interval '15 minutes'
			  AND name IN ('pganalytics_collector_collection_failures_total', 'pganalytics_collector_collections_total')
			GROUP BY collector_id) per`).Scan(&failed, &collections); err != nil {
		s.StoreError = err.Error()
	} else if collections > 0 {
		s.CollectorSuccess = 1 - failed/collections
	}
	if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&s.DatabaseBytes); err != nil {
		s.StoreError = err.Error()
	}
	return s
}

// serverErrors counts the requests answered with a 5xx, from the request histogram.
func serverErrors(s scrape) float64 {
	f := s.families["pganalytics_api_request_duration_seconds"]
	if f == nil {
		return 0
	}
	var n float64
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "code" && strings.HasPrefix(l.GetValue(), "5") && m.Histogram != nil {
				n += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return n
}

// medianSample is each figure's median over the rounds: the watch's baseline.
func medianSample(rounds []WatchRound) Sample {
	pick := func(f func(Sample) float64) float64 {
		var vs []float64
		for _, r := range rounds {
			if v := f(r.Sample); v != 0 { // 0 is "not measured this round" (no requests, no collections)
				vs = append(vs, v)
			}
		}
		sort.Float64s(vs)
		if len(vs) == 0 {
			return 0
		}
		return vs[len(vs)/2]
	}
	return Sample{
		At:               rounds[len(rounds)-1].Sample.At,
		APICPU:           pick(func(s Sample) float64 { return s.APICPU }),
		APIRSSBytes:      pick(func(s Sample) float64 { return s.APIRSSBytes }),
		P50Seconds:       pick(func(s Sample) float64 { return s.P50Seconds }),
		P95Seconds:       pick(func(s Sample) float64 { return s.P95Seconds }),
		P99Seconds:       pick(func(s Sample) float64 { return s.P99Seconds }),
		Requests:         pick(func(s Sample) float64 { return s.Requests }),
		ErrorRate:        pick(func(s Sample) float64 { return s.ErrorRate }),
		QuerySeconds:     pick(func(s Sample) float64 { return s.QuerySeconds }),
		CollectorSuccess: pick(func(s Sample) float64 { return s.CollectorSuccess }),
		DatabaseBytes:    pick(func(s Sample) float64 { return s.DatabaseBytes }),
	}
}

// Trend thresholds.
const (
	trendRounds       = 4        // rounds a trend needs
	rssGrowthFlag     = 0.10     // RSS up in every one of the last rounds and by more than this in all,
	rssGrowthMinBytes = 16 << 20 // and by more than this: a fresh server warming up grows a few MiB
	dbAcceleration    = 2.0      // the last interval's growth rate against the median rate
	dbGrowthMinBytes  = 1 << 20
	baselineP95Factor = 2.0
	minP95Requests    = 50
	baselineRSSFactor = 1.5
)

// findings judges the rounds so far: the plan's "monitor for memory leaks" (RSS growing round
// after round), "database growth should be linear" (the last interval's growth far above the usual
// rate) and the comparison with the baseline file.
func findings(rounds []WatchRound, baseline *Sample) []string {
	var out []string
	n := len(rounds)
	if n >= trendRounds {
		last := rounds[n-trendRounds:]
		growing := true
		for i := 1; i < len(last); i++ {
			if last[i].Sample.APIRSSBytes <= last[i-1].Sample.APIRSSBytes {
				growing = false
			}
		}
		first, final := last[0].Sample.APIRSSBytes, last[len(last)-1].Sample.APIRSSBytes
		if growing && first > 0 && (final-first)/first > rssGrowthFlag && final-first > rssGrowthMinBytes {
			out = append(out, fmt.Sprintf("API RSS grew in each of the last %d rounds, %.0f → %.0f MiB: a memory leak?", trendRounds,
				first/(1<<20), final/(1<<20)))
		}
		var rates []float64
		for i := 1; i < n; i++ {
			dt := rounds[i].Sample.At.Sub(rounds[i-1].Sample.At).Seconds()
			if dt > 0 {
				rates = append(rates, (rounds[i].Sample.DatabaseBytes-rounds[i-1].Sample.DatabaseBytes)/dt)
			}
		}
		if len(rates) >= trendRounds-1 {
			sorted := slices.Clone(rates)
			sort.Float64s(sorted)
			median, lastRate := sorted[len(sorted)/2], rates[len(rates)-1]
			grew := rounds[n-1].Sample.DatabaseBytes - rounds[n-2].Sample.DatabaseBytes
			if median > 0 && lastRate > dbAcceleration*median && grew > dbGrowthMinBytes {
				out = append(out, fmt.Sprintf("database growth not linear: %.0f KiB/s in the last round against %.0f KiB/s usually",
					lastRate/1024, median/1024))
			}
		}
	}
	if baseline != nil && n > 0 {
		cur := rounds[n-1].Sample
		// A p95 over a handful of requests is noise: compared from minP95Requests on.
		if baseline.P95Seconds > 0 && cur.Requests >= minP95Requests && cur.P95Seconds > baselineP95Factor*baseline.P95Seconds {
			out = append(out, fmt.Sprintf("p95 %s against the baseline's %s", secs(cur.P95Seconds), secs(baseline.P95Seconds)))
		}
		if baseline.APIRSSBytes > 0 && cur.APIRSSBytes > baselineRSSFactor*baseline.APIRSSBytes {
			out = append(out, fmt.Sprintf("API RSS %.0f MiB against the baseline's %.0f MiB", cur.APIRSSBytes/(1<<20), baseline.APIRSSBytes/(1<<20)))
		}
		if baseline.CollectorSuccess > 0 && cur.CollectorSuccess > 0 && cur.CollectorSuccess < baseline.CollectorSuccess-0.01 {
			out = append(out, fmt.Sprintf("collector success %.1f %% against the baseline's %.1f %%", 100*cur.CollectorSuccess, 100*baseline.CollectorSuccess))
		}
	}
	return out
}
