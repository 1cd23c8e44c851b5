package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// alertsAPI imitates the API's alert endpoints; holdAfter is how many status polls pass before
// the second Alertmanager holds the test alert (-1: never).
func alertsAPI(t *testing.T, holdAfter int) (url string, resolved *atomic.Bool) {
	t.Helper()
	resolved = &atomic.Bool{}
	var polls atomic.Int32
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	ams := func(secondOK bool) []api.AlertmanagerResult {
		r := []api.AlertmanagerResult{{URL: "http://am1:9093", OK: true}, {URL: "http://am2:9093", OK: secondOK}}
		if !secondOK {
			r[1].Error = "not received (yet)"
		}
		return r
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/alerts/test", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusAccepted, api.AlertTest{ID: "0123456789abcdef0123456789abcdef", Alertmanagers: ams(true)})
	})
	mux.HandleFunc("GET /api/v1/alerts/test/{id}", func(w http.ResponseWriter, r *http.Request) {
		n := int(polls.Add(1))
		write(w, http.StatusOK, api.AlertTest{ID: r.PathValue("id"), Alertmanagers: ams(holdAfter >= 0 && n > holdAfter)})
	})
	mux.HandleFunc("DELETE /api/v1/alerts/test/{id}", func(w http.ResponseWriter, r *http.Request) {
		resolved.Store(true)
		write(w, http.StatusOK, api.AlertTest{ID: r.PathValue("id"), Alertmanagers: ams(true)})
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		write(w, http.StatusOK, api.AlertsResponse{EvaluatedAt: now, Alerts: []api.Alert{
			{Name: "ReplicationLagHigh", Severity: "warning", State: "pending", ActiveAt: now.Add(-20 * time.Second), Value: 41, Threshold: 30, Summary: "lagging"},
			{Name: "InstanceDown", Severity: "critical", State: "firing", Firing: true, ActiveAt: now.Add(-time.Minute), Since: &now, Value: 1, Summary: "db2 down", RunbookURL: "docs/alerts/InstanceDown.md"},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, resolved
}

func TestAlertsCommand(t *testing.T) {
	isolateEnv(t)
	t.Setenv(client.EnvToken, "token")
	slow, _ := alertsAPI(t, 2)
	never, neverResolved := alertsAPI(t, -1)
	tests := []struct {
		name string
		args []string
		want int
		out  []string
	}{
		{"list", []string{"alerts", "--api-url", slow}, exitcode.OK, []string{"2 alerts", "firing   critical  InstanceDown", "pending  warning   ReplicationLagHigh", "41/30", "docs/alerts/InstanceDown.md"}},
		{"list as json", []string{"alerts", "--api-url", slow, "-o", "json"}, exitcode.OK, []string{`"state": "pending"`}},
		{"every Alertmanager got it", []string{"alerts", "test", "--api-url", slow, "--wait", "10s"}, exitcode.OK,
			[]string{"sent test alert 0123456789abcdef0123456789abcdef to 2", "PASS  http://am1:9093", "PASS  http://am2:9093", "resolved the test alert"}},
		{"one never got it", []string{"alerts", "test", "--api-url", never, "--wait", "1s"}, exitcode.CheckFailed,
			[]string{"PASS  http://am1:9093", "FAIL  http://am2:9093: not received (yet)", "1 of 2 Alertmanagers"}},
		{"unreachable", []string{"alerts", "test", "--api-url", closedPortURL(t)}, exitcode.Unreachable, nil},
		{"silence needs a comment", []string{"alerts", "silence", "alertname=X", "--api-url", slow}, exitcode.Usage, []string{"--comment"}},
		{"silence matcher form", []string{"alerts", "silence", "alertname", "--comment", "c", "--api-url", slow}, exitcode.Usage, []string{"LABEL=VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := pgactlRun(t, "", tt.args...)
			if code != tt.want {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.want, out)
			}
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if !neverResolved.Load() {
		t.Error("a failed test did not resolve its alert")
	}
}
