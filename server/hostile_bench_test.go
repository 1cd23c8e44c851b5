package server

// Benchmarks of what hostile pushes cost the real server (a child process, see TestMain): its CPU
// time and peak resident memory while a collector sends bodies built to be expensive. The answers
// themselves are pinned by TestHostileInput; these measure the bounds.
//
//	go test -run '^$' -bench Hostile -benchtime 1x ./server/

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/store"
)

// gzipFill compresses prefix, then n bytes of fill, then suffix.
func gzipFill(tb testing.TB, prefix string, fill byte, n int, suffix string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte(prefix))
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		zw.Write(chunk[:min(left, len(chunk))])
	}
	zw.Write([]byte(suffix))
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// pushStatus sends one gzip push and returns its status, 0 when the connection failed.
func pushStatus(tb testing.TB, client *http.Client, url, token string, body []byte) int {
	hr, _ := http.NewRequest("POST", url+"/api/v1/metrics/push", bytes.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Content-Encoding", "gzip")
	res, err := client.Do(hr)
	if err != nil {
		tb.Logf("push: %v", err)
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// pushAll sends body once per token, all at once, and counts the answers by status.
func pushAll(b *testing.B, client *http.Client, url string, tokens []string, body []byte) map[int]int {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for _, tok := range tokens {
		wg.Go(func() {
			st := pushStatus(b, client, url, tok, body)
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// reportStatuses reports how many pushes got each status (answered-0: the connection failed).
func reportStatuses(b *testing.B, statuses map[int]int) {
	for st, n := range statuses {
		b.ReportMetric(float64(n), fmt.Sprintf("answered-%d", st))
	}
}

// followStreams has n clients follow the replication stream until the returned func is called,
// which returns how many bytes they received in all.
func followStreams(client *http.Client, url, token string, n int) (stop func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		received atomic.Int64
	)
	for range n {
		wg.Go(func() {
			hr, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/replication/stream", nil)
			hr.Header.Set("Authorization", "Bearer "+token)
			res, err := client.Do(hr)
			if err != nil {
				return
			}
			defer res.Body.Close()
			got, _ := io.Copy(io.Discard, res.Body)
			received.Add(got)
		})
	}
	return func() int64 {
		cancel()
		wg.Wait()
		return received.Load()
	}
}

// viewerToken creates a viewer in the bench server's store and logs it in.
func (s *benchServer) viewerToken(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, s.dsn, store.Options{MaxConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := auth.NewHasher(auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, 1)
	if err != nil {
		b.Fatal(err)
	}
	hash, err := h.Hash(ctx, testPassword)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, "bench-viewer", hash, api.RoleViewer); err != nil {
		b.Fatal(err)
	}
	body := fmt.Sprintf(`{"username":"bench-viewer","password":%q}`, testPassword)
	res, err := http.Post(s.url+"/api/v1/auth/login", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var pair api.TokenPair
	if err := json.NewDecoder(res.Body).Decode(&pair); err != nil || pair.AccessToken == "" {
		b.Fatalf("login: %d %v", res.StatusCode, err)
	}
	return pair.AccessToken
}

// BenchmarkHostileSnapshot pushes a snapshot whose system_identifier is 16 MiB (a 16 KiB gzip
// body), then has 8 clients follow the event stream and read GET /replication while the same push
// is repeated: the server's peak memory.
func BenchmarkHostileSnapshot(b *testing.B) {
	for b.Loop() {
		s := startBenchServer(b)
		client := &http.Client{Timeout: 5 * time.Minute}
		reg := s.register(b, client, 1)[0]
		viewer := s.viewerToken(b)
		at := time.Now().UTC().Format(time.RFC3339)
		body := gzipFill(b, `{"collected_at":"`+at+`","metrics":[{"name":"pg_up","value":1}],"snapshot":{"collected_at":"`+at+
			`","clusters":[{"system_identifier":"`, '7', 16<<20, `","timeline":1,"instances":[],"standbys":[],"slots":[],"subscriptions":[]}]}}`)
		status := pushStatus(b, client, s.url, reg.Token, body)

		stop := followStreams(client, s.url, viewer, 8)
		for range 8 {
			hr, _ := http.NewRequest("GET", s.url+"/api/v1/replication", nil)
			hr.Header.Set("Authorization", "Bearer "+viewer)
			if res, err := client.Do(hr); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}
		for range 5 {
			pushStatus(b, client, s.url, reg.Token, body)
		}
		time.Sleep(3 * time.Second) // the streams take what was published
		stop()
		_, peak := s.rssMiB(b)
		b.ReportMetric(float64(status), "push-status")
		b.ReportMetric(peak, "server-peak-rss-MiB")
	}
}

// BenchmarkHostileWhitespace pushes gzip bodies of nothing but whitespace inside the metrics array
// (16 KiB and 64 KiB on the wire: 16 and 64 MiB decompressed): the server CPU time one such push
// costs, and its answer.
func BenchmarkHostileWhitespace(b *testing.B) {
	s := startBenchServer(b)
	client := &http.Client{Timeout: 10 * time.Minute}
	reg := s.register(b, client, 1)[0]
	for _, mib := range []int{16, 64} {
		body := gzipFill(b, `{"collected_at":"2026-01-01T00:00:00Z","metrics":[`, ' ', mib<<20, `{"name":"pg_up","value":1}]}`)
		b.Run(fmt.Sprintf("decompressed=%dMiB/wire=%dKiB", mib, len(body)>>10), func(b *testing.B) {
			for b.Loop() {
				cpu0 := s.cpuSeconds(b)
				start := time.Now()
				status := pushStatus(b, client, s.url, reg.Token, body)
				b.ReportMetric(time.Since(start).Seconds(), "answer-s")
				b.ReportMetric(s.cpuSeconds(b)-cpu0, "server-cpu-s")
				b.ReportMetric(float64(status), "push-status")
			}
		})
	}
}

// BenchmarkHostileConcurrentPushes has one collector send 8 pushes at once, each 1 MiB of gzip on
// the wire (whitespace, then a label value, each decompressing to the 64 MiB cap): the server's
// peak memory, and how the pushes were answered.
func BenchmarkHostileConcurrentPushes(b *testing.B) {
	kinds := []struct{ name, prefix string }{
		{"whitespace", `{"collected_at":"2026-01-01T00:00:00Z","metrics":[`},
		{"label-value", `{"collected_at":"2026-01-01T00:00:00Z","metrics":[{"name":"a","value":1,"labels":{"a":"`},
	}
	for _, k := range kinds {
		fill := byte(' ')
		if k.name == "label-value" {
			fill = 'a'
		}
		body := gzipFill(b, k.prefix, fill, 1<<30, "")
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				s := startBenchServer(b)
				client := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
				reg := s.register(b, client, 1)[0]
				cpu0 := s.cpuSeconds(b)
				tokens := []string{reg.Token, reg.Token, reg.Token, reg.Token, reg.Token, reg.Token, reg.Token, reg.Token}
				statuses := pushAll(b, client, s.url, tokens, body)
				_, peak := s.rssMiB(b)
				b.ReportMetric(peak, "server-peak-rss-MiB")
				b.ReportMetric(s.cpuSeconds(b)-cpu0, "server-cpu-s")
				reportStatuses(b, statuses)
			}
		})
	}
}

// bigSnapshot is a valid snapshot as large as the bounds let it be (just under
// api.MaxSnapshotBytes): clusters full of slots with the longest names PostgreSQL allows.
func bigSnapshot(tb testing.TB) *api.Snapshot {
	tb.Helper()
	sn := &api.Snapshot{CollectedAt: time.Now().UTC()}
	name := strings.Repeat("s", api.MaxIdentifierBytes-4)
	for c := 0; ; c++ {
		cl := api.Cluster{SystemIdentifier: fmt.Sprintf("%020d", c), Timeline: 1}
		for i := range 64 {
			cl.Slots = append(cl.Slots, api.Slot{Name: fmt.Sprintf("%s%04d", name, i), Type: "physical", WALStatus: "reserved", Plugin: name, Database: name})
		}
		sn.Clusters = append(sn.Clusters, cl)
		raw, _ := json.Marshal(sn)
		if len(raw) > api.MaxSnapshotBytes-64<<10 {
			sn.Clusters = sn.Clusters[:len(sn.Clusters)-1]
			return sn
		}
	}
}

// BenchmarkLargestSnapshotStreams pushes the largest snapshot the bounds allow, 20 times, while
// 8 clients follow the event stream: each event is rendered once and its bytes shared, so the
// server's memory does not grow with the number of clients.
func BenchmarkLargestSnapshotStreams(b *testing.B) {
	sn := bigSnapshot(b)
	for b.Loop() {
		s := startBenchServer(b)
		client := &http.Client{Timeout: 5 * time.Minute}
		reg := s.register(b, client, 1)[0]
		viewer := s.viewerToken(b)
		p := api.PushRequest{CollectedAt: time.Now().UTC(), Metrics: []api.Sample{{Name: "pg_up", Value: 1}}, Snapshot: sn}
		body := gzipJSON(b, p)
		stop := followStreams(client, s.url, viewer, 8)
		time.Sleep(500 * time.Millisecond)
		accepted := 0
		for range 20 {
			if pushStatus(b, client, s.url, reg.Token, body) == http.StatusAccepted {
				accepted++
			}
		}
		time.Sleep(3 * time.Second)
		received := stop()
		_, peak := s.rssMiB(b)
		raw, _ := json.Marshal(sn)
		b.ReportMetric(float64(len(raw))/(1<<20), "snapshot-MiB")
		b.ReportMetric(float64(accepted), "accepted")
		b.ReportMetric(float64(received)/(1<<20), "streamed-MiB")
		b.ReportMetric(peak, "server-peak-rss-MiB")
	}
}

// BenchmarkHostilePushMix has 16 collectors push at once, 4 rounds, each push 30 MiB of valid
// samples (25,000 samples with 1.2 KiB of labels): about the largest pushes the limits
// accept, far more at once than the push memory budget holds. The server's peak memory, and how
// the pushes were answered (202, or 503 with Retry-After past the budget).
func BenchmarkHostilePushMix(b *testing.B) {
	body := gzipJSON(b, []byte(pushJSON(manySamples(30<<20)...)))
	for b.Loop() {
		s := startBenchServer(b)
		client := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		var tokens []string
		for _, reg := range s.register(b, client, 16) {
			tokens = append(tokens, reg.Token)
		}
		statuses := map[int]int{}
		for range 4 {
			for st, n := range pushAll(b, client, s.url, tokens, body) {
				statuses[st] += n
			}
		}
		_, peak := s.rssMiB(b)
		b.ReportMetric(peak, "server-peak-rss-MiB")
		reportStatuses(b, statuses)
	}
}
