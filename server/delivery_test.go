package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/amtest"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/config"
)

// TestAlertDeliveryToAlertmanager: a real Alertmanager, a webhook behind it. A collector reports a
// full buffer: the critical and the warning alert reach the webhook with their labels, annotations
// and generatorURL; the buffer drains: the resolved notification arrives. With two API servers
// only one delivers; when it stops, the other takes over and delivers the next alert.
func TestAlertDeliveryToAlertmanager(t *testing.T) {
	am := amtest.Start(t)
	dsn, st, pool := testDB(t)
	withAM := func(c *config.Config) {
		c.Alerting.AlertmanagerURLs = []string{am.URL}
		c.Alerting.ResendInterval = config.Dur(time.Minute)
		c.Alerting.ExternalURL = "https://api.example.com"
		c.Alerting.RunbookBaseURL = "https://docs.example.com/pganalytics/"
	}
	a := startServerOn(t, dsn, st, pool, withAM)
	b := startServerOn(t, dsn, st, pool, withAM)
	reg := a.register("buffered")
	report := func(ts *testServer, utilization float64) time.Time {
		t.Helper()
		p := samplePush(1)
		p.Status.BufferUtilization, p.Status.CollectionFailuresTotal = utilization, 0
		body, _ := json.Marshal(p)
		mustStatus(t, ts.push(reg.Token, body, false), 202)
		return time.Now()
	}
	critical := func(status string) func(amtest.Alert) bool {
		return func(x amtest.Alert) bool {
			return x.Labels["alertname"] == "CollectorBufferHigh" && x.Labels["severity"] == "critical" && x.Status == status
		}
	}

	induced := report(a, 0.95)
	got := am.WaitFor(t, 10*time.Second, critical("firing"))
	t.Logf("firing: %s from the push to the webhook", got.ReceivedAt.Sub(induced).Round(time.Millisecond))
	if got.Labels["collector_name"] != "buffered" || got.Labels["collector_id"] != reg.CollectorID ||
		got.Annotations["runbook_url"] != "https://docs.example.com/pganalytics/docs/alerts/CollectorBufferHigh.md" ||
		!strings.Contains(got.Annotations["summary"], "buffer 95 % full") || got.GeneratorURL != "https://api.example.com/api/v1/alerts" {
		t.Fatalf("delivered %+v", got)
	}
	am.WaitFor(t, 10*time.Second, func(x amtest.Alert) bool {
		return x.Labels["alertname"] == "CollectorBufferHigh" && x.Labels["severity"] == "warning"
	})

	cleared := report(a, 0.1)
	got = am.WaitFor(t, 10*time.Second, critical("resolved"))
	t.Logf("resolved: %s from the push to the webhook", got.ReceivedAt.Sub(cleared).Round(time.Millisecond))

	sentBy := func(ts *testServer) string {
		return ts.metricValue(`pganalytics_api_alert_notifications_total{alertmanager="` + am.URL + `",result="sent"}`)
	}
	sa, sb := sentBy(a), sentBy(b)
	if (sa == "") == (sb == "") {
		t.Fatalf("alerts sent by server a %q and b %q: want exactly one sender", sa, sb)
	}
	leader, other := a, b
	if sa == "" {
		leader, other = b, a
	}
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	induced = report(other, 0.96)
	got = am.WaitFor(t, 15*time.Second, func(x amtest.Alert) bool {
		return critical("firing")(x) && x.ReceivedAt.After(induced)
	})
	t.Logf("after the sending server stopped: %s from the push to the webhook", got.ReceivedAt.Sub(induced).Round(time.Millisecond))
	if sentBy(other) == "" {
		t.Fatal("the other server did not take over")
	}

	t.Run("self-test through the API", func(t *testing.T) {
		op := other.userToken("oncall", api.RoleOperator)
		viewer := other.userToken("watcher", api.RoleViewer)
		mustStatus(t, other.do(req{method: "POST", path: "/api/v1/alerts/test", token: viewer}), http.StatusForbidden)
		r := other.do(req{method: "POST", path: "/api/v1/alerts/test", token: op})
		mustStatus(t, r, http.StatusAccepted)
		var sent api.AlertTest
		r.decode(t, &sent)
		if len(sent.Alertmanagers) != 1 || !sent.Alertmanagers[0].OK {
			t.Fatalf("sent %+v", sent)
		}
		waitFor(t, func() bool {
			var st api.AlertTest
			other.do(req{method: "GET", path: "/api/v1/alerts/test/" + sent.ID, token: op}).decode(t, &st)
			return len(st.Alertmanagers) == 1 && st.Alertmanagers[0].OK
		})
		am.WaitFor(t, 10*time.Second, func(x amtest.Alert) bool { return x.Labels["test_id"] == sent.ID && x.Status == "firing" })
		mustStatus(t, other.do(req{method: "DELETE", path: "/api/v1/alerts/test/" + sent.ID, token: op}), http.StatusOK)
		am.WaitFor(t, 10*time.Second, func(x amtest.Alert) bool { return x.Labels["test_id"] == sent.ID && x.Status == "resolved" })
		mustStatus(t, other.do(req{method: "GET", path: "/api/v1/alerts/test/nothex", token: op}), http.StatusNotFound)
		if n := auditCount(t, other, "alert_test"); n != 1 {
			t.Fatalf("alert_test audit rows %d", n)
		}
	})

	t.Run("silence through the API", func(t *testing.T) {
		op := other.login("oncall").AccessToken
		bad := other.do(req{method: "POST", path: "/api/v1/alerts/silences", token: op,
			body: api.SilenceRequest{Matchers: map[string]string{"alertname": "CollectorBufferHigh"}, Duration: "10y", Comment: "x"}})
		mustStatus(t, bad, http.StatusBadRequest)
		r := other.do(req{method: "POST", path: "/api/v1/alerts/silences", token: op,
			body: api.SilenceRequest{Matchers: map[string]string{"alertname": "CollectorBufferHigh", "collector_name": "buffered"}, Duration: "2h", Comment: "draining the spool"}})
		mustStatus(t, r, http.StatusCreated)
		var sr api.SilenceResponse
		r.decode(t, &sr)
		if len(sr.Alertmanagers) != 1 || !sr.Alertmanagers[0].OK || sr.Alertmanagers[0].ID == "" || sr.EndsAt.Sub(sr.StartsAt) != 2*time.Hour {
			t.Fatalf("silence %+v", sr)
		}
		res, err := http.Get(am.URL + "/api/v2/silence/" + sr.Alertmanagers[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var got struct {
			Comment   string `json:"comment"`
			CreatedBy string `json:"createdBy"`
			Status    struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil || got.Comment != "draining the spool" ||
			got.CreatedBy != "pganalytics:oncall" || got.Status.State != "active" {
			t.Fatalf("alertmanager holds %+v (%v)", got, err)
		}
		if n := auditCount(t, other, "silence_created"); n != 1 {
			t.Fatalf("silence_created audit rows %d", n)
		}
	})
}

// TestReloadRules: SIGHUP's reload takes a changed rules file; a file that does not load leaves the
// rules in force; the stored alerts carry over the reload.
func TestReloadRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.toml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const always = "[[rule]]\nname = \"%s\"\nquantity = \"watchdog\"\ninfo = 0\nsummary = \"on\"\n"
	write(fmt.Sprintf(always, "First"))
	ts := startServer(t, func(c *config.Config) { c.Alerting.RulesFile = path })
	viewer := ts.userToken("v", api.RoleViewer)
	firing := func(name string) bool {
		var ar api.AlertsResponse
		ts.do(req{method: "GET", path: "/api/v1/alerts", token: viewer}).decode(t, &ar)
		for _, a := range ar.Alerts {
			if a.Name == name && a.Firing {
				return true
			}
		}
		return false
	}
	waitFor(t, func() bool { return firing("First") })
	write(fmt.Sprintf(always, "First") + "\n" + fmt.Sprintf(always, "Second"))
	if err := ts.srv.ReloadRules(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return firing("Second") })
	if !firing("First") {
		t.Fatal("the reload dropped an alert that still fires")
	}
	write("[[rule]]\nname = \"Broken\"\nquantity = \"nope\"\n")
	if err := ts.srv.ReloadRules(); err == nil || !strings.Contains(err.Error(), `unknown quantity "nope"`) {
		t.Fatalf("bad file: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if !firing("First") || !firing("Second") {
		t.Fatal("a bad file replaced the rules in force")
	}
}
