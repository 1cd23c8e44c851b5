// Package promtest starts a real Prometheus (Debian's prometheus) for a test, on a free loopback
// port, as a remote-write receiver (--web.enable-remote-write-receiver) with nothing to scrape, and
// queries it with PromQL.
package promtest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Binary is Debian's Prometheus server.
const Binary = "prometheus"

// Server is a running Prometheus.
type Server struct {
	URL string // base URL; remote write goes to URL + "/api/v1/write"
}

// WriteURL is where remote write is received.
func (s *Server) WriteURL() string { return s.URL + "/api/v1/write" }

// Start runs Prometheus until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		t.Fatalf("%s not found: make test installs it (apt-get install prometheus)", Binary)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  evaluation_interval: 1m\nscrape_configs: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=warn",
		// Samples as old as the test's pushes are accepted.
		"--storage.tsdb.retention.time=1d")
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", raw)
		}
	})
	s := &Server{URL: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s not ready within 30 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Vector is one series of an instant query's answer.
type Vector struct {
	Metric map[string]string
	Time   time.Time
	Value  float64
}

// Query runs an instant PromQL query at at.
func (s *Server) Query(t testing.TB, promql string, at time.Time) []Vector {
	t.Helper()
	q := url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	res, err := http.Get(s.URL + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("query %q: %v", promql, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %q: %s", promql, body.Error)
	}
	var out []Vector
	for _, r := range body.Data.Result {
		ts, _ := r.Value[0].(float64)
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			t.Fatalf("query %q: value %v", promql, r.Value[1])
		}
		out = append(out, Vector{Metric: r.Metric, Time: time.UnixMilli(int64(ts * 1000)), Value: v})
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
