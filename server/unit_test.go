package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/alerting"
)

func TestClientIP(t *testing.T) {
	proxies := trustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32")}
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client, header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted proxy, one hop", "10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"rightmost untrusted hop wins over a spoofed left", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"chained trusted proxies skipped", "10.1.2.3:5000", []string{"198.51.100.7, 192.168.1.1", "10.9.9.9"}, "198.51.100.7"},
		{"garbage hop stops the walk", "10.1.2.3:5000", []string{"198.51.100.7, not-an-ip"}, "10.1.2.3"},
		{"all hops trusted", "10.1.2.3:5000", []string{"10.0.0.5"}, "10.0.0.5"},
		{"no header from proxy", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"ipv6 client", "[2001:db8::1]:5000", nil, "2001:db8::1"},
		{"ipv4-mapped proxy", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := proxies.clientIP(r).String(); got != tc.want {
				t.Fatalf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMinuteP95(t *testing.T) {
	cases := []struct {
		name  string
		obs   []time.Duration
		check func(float64) bool
	}{
		{"empty", nil, func(p float64) bool { return p == 0 }},
		{"all fast", repeat(100, 800*time.Microsecond), func(p float64) bool { return p > 0 && p <= 1 }},
		{"5% slow", append(repeat(95, 2*time.Millisecond), repeat(5, 2*time.Second)...), func(p float64) bool { return p > 1 && p <= 2 }},
		{"10% slow", append(repeat(90, 2*time.Millisecond), repeat(10, 2*time.Second)...), func(p float64) bool { return p > 1500 && p <= 2500 }},
		{"beyond the last bound", repeat(10, time.Minute), func(p float64) bool { return p == 30000 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRequestStats()
			now := time.Date(2026, 2, 27, 15, 0, 10, 0, time.UTC)
			for _, d := range tc.obs {
				s.observe(now, d, 200, true)
			}
			_, running := s.take(now, "srv")
			if !tc.check(running.DurationP95Ms) {
				t.Fatalf("p95 %g ms", running.DurationP95Ms)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestRequestStatsRollOver(t *testing.T) {
	s := newRequestStats()
	t0 := time.Date(2026, 2, 27, 15, 0, 10, 0, time.UTC)
	s.observe(t0, time.Millisecond, 200, true)
	s.observe(t0, time.Millisecond, 503, true)
	s.observe(t0, time.Hour, 200, false) // an event stream: counted, not timed
	s.rateLimited(t0)
	s.authFailure(t0)
	s.observe(t0.Add(time.Minute), time.Millisecond, 200, true)
	finished, running := s.take(t0.Add(time.Minute), "srv")
	if len(finished) != 1 || finished[0].Requests != 3 || finished[0].DurationP95Ms > 1 || finished[0].ServerErrors != 1 ||
		finished[0].RateLimited != 1 || finished[0].AuthFailures != 1 || finished[0].Server != "srv" ||
		!finished[0].Minute.Equal(t0.Truncate(time.Minute)) {
		t.Fatalf("finished %+v", finished)
	}
	if running.Requests != 1 {
		t.Fatalf("running %+v", running)
	}
	s.putBack(finished)
	again, _ := s.take(t0.Add(time.Minute), "srv")
	if len(again) != 1 {
		t.Fatalf("put back rows lost: %+v", again)
	}
	for i := range maxPendingMinutes + 10 {
		s.observe(t0.Add(time.Duration(i+2)*time.Minute), time.Millisecond, 200, true)
	}
	if finished, _ := s.take(t0.Add(100*time.Minute), "srv"); len(finished) != maxPendingMinutes {
		t.Fatalf("pending minutes not bounded: %d", len(finished))
	}
}

// TestHubDropsSlowSubscribers checks that publishing never blocks: a subscriber that stops reading
// is cut off once its buffer is full, while a reading one keeps receiving.
func TestHubDropsSlowSubscribers(t *testing.T) {
	loads := make(chan string, 1000)
	drops := 0
	h := newTopologyHub(func(_ context.Context, id string) ([]api.CollectorTopology, error) {
		loads <- id
		if id == "broken" {
			return nil, errors.New("boom")
		}
		return []api.CollectorTopology{{CollectorID: id}}, nil
	}, noEvents, func(error) {}, func() { drops++ }, 100, 10)

	h.notify("before-anyone") // nobody listens: not even loaded
	slow, _, err := h.subscribe("", "user:a")
	if err != nil {
		t.Fatal(err)
	}
	fast, unsubscribe, _ := h.subscribe("c1", "user:b")
	ev := []byte("event: topology\ndata: {}\n\n")
	for range subscriberBuffer + 1 {
		h.publish("c1", ev)
		if got := <-fast.events; &got[0] != &ev[0] {
			t.Fatal("the event was copied for a subscriber")
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("slow subscriber not dropped")
	}
	if drops != 1 {
		t.Fatalf("drops %d", drops)
	}
	select {
	case <-fast.gone:
		t.Fatal("reading subscriber dropped")
	default:
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	h.notify("broken")
	h.notify("c1")
	got := <-fast.events
	if !strings.Contains(string(got), `"collector_id":"c1"`) || !strings.HasPrefix(string(got), "event: topology\ndata: ") {
		t.Fatalf("event %q", got)
	}
	cancel()
	<-done
	close(loads)
	for id := range loads {
		if id == "before-anyone" {
			t.Fatal("loaded a topology nobody follows")
		}
	}

	unsubscribe()
	unsubscribe() // idempotent
	h.close()
	if _, _, err := h.subscribe("", "user:a"); !errors.Is(err, errHubClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// TestHubCapsStreams checks the per-principal and per-server caps and that leaving frees a place.
func TestHubCapsStreams(t *testing.T) {
	h := newTopologyHub(func(context.Context, string) ([]api.CollectorTopology, error) { return nil, nil },
		noEvents, func(error) {}, func() {}, 3, 2)
	_, leaveA1, err := h.subscribe("", "user:a")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("", "user:a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("", "user:a"); !errors.Is(err, errPrincipalStreams) {
		t.Fatalf("third stream of a: %v", err)
	}
	if _, _, err := h.subscribe("", "user:b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("", "user:c"); !errors.Is(err, errTooManyStreams) {
		t.Fatalf("fourth stream on the server: %v", err)
	}
	leaveA1()
	if _, _, err := h.subscribe("", "user:c"); err != nil {
		t.Fatalf("after one left: %v", err)
	}
}

func TestAtLeast(t *testing.T) {
	cases := []struct {
		role, min string
		want      bool
	}{
		{api.RoleAdmin, api.RoleViewer, true}, {api.RoleAdmin, api.RoleAdmin, true},
		{api.RoleOperator, api.RoleViewer, true}, {api.RoleOperator, api.RoleAdmin, false},
		{api.RoleViewer, api.RoleOperator, false}, {"", api.RoleViewer, false}, {"root", api.RoleViewer, false},
	}
	for _, tc := range cases {
		if got := atLeast(tc.role, tc.min); got != tc.want {
			t.Errorf("atLeast(%q, %q) = %v", tc.role, tc.min, got)
		}
	}
}

// TestPushGate: pushes per collector, one collector's share of the memory budget, the budget for
// all, and everything given back on leave.
func TestPushGate(t *testing.T) {
	g := newPushGate(2, 60, 100, prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	a1, e := g.enter("a")
	if e != nil {
		t.Fatal(e)
	}
	a2, _ := g.enter("a")
	if _, e := g.enter("a"); e == nil || e.status != http.StatusTooManyRequests {
		t.Fatalf("third push of a: %v", e)
	}
	if !a1.charge(40) || a2.charge(30) {
		t.Fatal("a's share is 60")
	}
	b, _ := g.enter("b")
	if !b.charge(60) || b.charge(1) {
		t.Fatal("the budget is 100 with 40 taken")
	}
	a1.leave()
	if !b.charge(0) || g.used != 60 {
		t.Fatalf("used %d after a1 left", g.used)
	}
	a2.leave()
	b.leave()
	if g.used != 0 || len(g.active) != 0 {
		t.Fatalf("left behind: used %d, active %v", g.used, g.active)
	}
}

// TestNotifierWhatIsDue: firing alerts are sent once per resend interval, resolved ones once and
// only if sent firing before, pending ones never; a failed post is retried after a backoff.
func TestNotifierWhatIsDue(t *testing.T) {
	var posts [][]amAlert
	fail := false
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []amAlert
		_ = json.NewDecoder(r.Body).Decode(&got)
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		posts = append(posts, got)
	}))
	defer am.Close()
	results := 0
	n := newNotifier([]string{am.URL}, time.Minute, "https://api/api/v1/alerts", "https://docs/", func(string, int, error) { results++ })
	t0 := time.Now()
	firing := alerting.Alert{Rule: "R", Severity: "critical", Key: "k", State: alerting.StateFiring, FiredAt: t0,
		Labels: map[string]string{"cluster": "7", "empty": ""}, Summary: "s", RunbookURL: "docs/alerts/R.md"}
	pending := alerting.Alert{Rule: "P", Severity: "warning", Key: "k", State: alerting.StatePending}
	n.notify(t.Context(), []alerting.Alert{firing, pending}, t0)
	n.notify(t.Context(), []alerting.Alert{firing, pending}, t0.Add(30*time.Second))
	if len(posts) != 1 || len(posts[0]) != 1 {
		t.Fatalf("posts %+v", posts)
	}
	w := posts[0][0]
	if w.Labels["alertname"] != "R" || w.Labels["severity"] != "critical" || w.Labels["cluster"] != "7" || w.Labels["empty"] != "" ||
		w.Annotations["runbook_url"] != "https://docs/docs/alerts/R.md" || !w.EndsAt.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("sent %+v", w)
	}
	n.notify(t.Context(), []alerting.Alert{firing}, t0.Add(61*time.Second))
	if len(posts) != 2 {
		t.Fatalf("not resent after the interval: %d posts", len(posts))
	}
	resolved := firing
	resolved.State, resolved.ResolvedAt = alerting.StateResolved, t0.Add(70*time.Second)
	fail = true
	n.notify(t.Context(), []alerting.Alert{resolved}, t0.Add(70*time.Second))
	if !n.failing() {
		t.Fatal("a failed post does not show")
	}
	n.notify(t.Context(), []alerting.Alert{resolved}, t0.Add(70*time.Second+500*time.Millisecond)) // within the backoff
	fail = false
	n.notify(t.Context(), []alerting.Alert{resolved}, t0.Add(72*time.Second))
	if len(posts) != 3 || !posts[2][0].EndsAt.Equal(resolved.ResolvedAt) || n.failing() || results != 4 {
		t.Fatalf("resolved: %d posts, %d results, failing %v", len(posts), results, n.failing())
	}
	n.notify(t.Context(), []alerting.Alert{resolved}, t0.Add(200*time.Second))
	if len(posts) != 3 {
		t.Fatal("a resolved alert sent twice")
	}
}

func noEvents(context.Context, int64) (api.Event, error) {
	return api.Event{}, errors.New("no events here")
}
