// Package amtest starts a real Alertmanager (Debian's prometheus-alertmanager) for a test, on a
// free loopback port, routing every alert to a webhook receiver the test holds: what Alertmanager
// delivers is what the test reads from Notifications.
package amtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Binary is the Alertmanager server binary of Debian's package.
const Binary = "prometheus-alertmanager"

// Notification is one webhook delivery of Alertmanager (its webhook payload, version 4).
type Notification struct {
	Status string  `json:"status"` // firing | resolved
	Alerts []Alert `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	ReceivedAt   time.Time         `json:"-"` // when the webhook got it
}

// Server is a running Alertmanager and its webhook receiver.
type Server struct {
	URL string // Alertmanager's base URL

	mu       sync.Mutex
	received []Alert
	arrived  chan struct{}
}

// Start runs Alertmanager until the test ends. Its route sends everything, grouped by alertname
// and labels, at once (group_wait 0s, group_interval 1s) to the webhook, resolved alerts too.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		t.Fatalf("%s not found: make test installs it (apt-get install prometheus-alertmanager)", Binary)
	}
	s := &Server{arrived: make(chan struct{}, 1)}
	hook := httptest.NewServer(http.HandlerFunc(s.receive))
	t.Cleanup(hook.Close)

	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hook.URL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--cluster.listen-address=", "--log.level=warn")
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
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
			t.Fatalf("alertmanager not ready on %s: %v", s.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request) {
	var n Notification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	s.mu.Lock()
	for _, a := range n.Alerts {
		a.ReceivedAt = now
		s.received = append(s.received, a)
	}
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
}

// Received returns every alert the webhook got so far, in order.
func (s *Server) Received() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Alert(nil), s.received...)
}

// WaitFor waits up to timeout for a received alert that match accepts, and returns it.
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, match func(Alert) bool) Alert {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, a := range s.Received() {
			if match(a) {
				return a
			}
		}
		select {
		case <-s.arrived:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no matching alert within %s; received %+v", timeout, s.Received())
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("alertmanager: %s", p)
	return len(p), nil
}
