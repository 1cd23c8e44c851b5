package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/promtest"
	"github.com/pganalytics/pganalytics/server/config"
)

// TestRemoteWriteToPrometheus forwards pushes to a real Prometheus receiver: every sample arrives
// under its name with its labels and the collector's id, and PromQL over them answers what the
// store holds.
func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := promtest.Start(t)
	ts := startServer(t, func(c *config.Config) {
		c.RemoteWrite = []config.RemoteWrite{{URL: prom.WriteURL(), Headers: map[string]string{"X-Scope-OrgID": "fleet-a"}}}
	})
	reg := ts.register("rw-collector")
	viewer := ts.userToken("rw-viewer", api.RoleViewer)

	const pushes, standbys = 3, 4
	start := time.Now().UTC().Truncate(time.Second).Add(-time.Duration(pushes) * 10 * time.Second)
	var (
		last time.Time
		ids  []int64
	)
	for p := range pushes {
		req := samplePush(standbys)
		req.CollectedAt = start.Add(time.Duration(p) * 10 * time.Second)
		last = req.CollectedAt
		for i := range req.Metrics {
			req.Metrics[i].Value = float64(1000*p + i)
		}
		req.Metrics = append(req.Metrics, api.Sample{Name: "pg_up", Value: 1, Labels: map[string]string{"instance": "db1:5432"},
			Timestamp: req.CollectedAt.Add(-time.Second)})
		if ids != nil { // after the first push, by the series ids it handed back, as a collector sends them
			by := &api.SeriesSamples{SeriesIDs: ids}
			for _, m := range req.Metrics {
				ts := m.Timestamp
				if ts.IsZero() {
					ts = req.CollectedAt
				}
				by.Values, by.TimestampsMS = append(by.Values, m.Value), append(by.TimestampsMS, ts.UnixMilli())
			}
			req.Metrics, req.ByID = nil, by
		}
		r := ts.push(reg.Token, gzipJSON(t, req), true)
		mustStatus(t, r, http.StatusAccepted)
		if ids == nil {
			var res api.PushResponse
			r.decode(t, &res)
			ids = res.SeriesIDs
		}
	}

	sel := fmt.Sprintf(`pg_replication_replay_lag_bytes{collector_id=%q}`, reg.CollectorID)
	deadline := time.Now().Add(30 * time.Second)
	var got []promtest.Vector
	for {
		got = prom.Query(t, "count_over_time("+sel+"[5m])", last)
		if len(got) == standbys && got[0].Value == pushes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has %+v, want %d series of %d samples", got, standbys, pushes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, v := range got {
		if v.Metric["instance"] != "db1:5432" || !strings.HasPrefix(v.Metric["application_name"], "standby") || v.Value != pushes {
			t.Errorf("series %+v", v)
		}
	}

	// PromQL against the store: the latest value of each series, and their sum.
	var stored api.MetricsResponse
	ts.do(req{method: "GET", path: "/api/v1/metrics?name=pg_replication_replay_lag_bytes&collector_id=" + reg.CollectorID, token: viewer}).decode(t, &stored)
	latest := map[string]float64{}
	var storeSum float64
	for _, s := range stored.Samples {
		if s.Timestamp.Equal(last) {
			latest[s.Labels["application_name"]] = s.Value
			storeSum += s.Value
		}
	}
	if len(latest) != standbys {
		t.Fatalf("the store's latest samples: %+v", stored.Samples)
	}
	for _, v := range prom.Query(t, sel, last) {
		if want := latest[v.Metric["application_name"]]; v.Value != want || !v.Time.Equal(last) {
			t.Errorf("Prometheus %s = %v at %s, the store %v at %s", v.Metric["application_name"], v.Value, v.Time, want, last)
		}
	}
	if sum := prom.Query(t, "sum("+sel+")", last); len(sum) != 1 || sum[0].Value != storeSum {
		t.Errorf("sum in Prometheus %+v, in the store %v", sum, storeSum)
	}
	// A sample's own timestamp is kept.
	if up := prom.Query(t, fmt.Sprintf(`timestamp(pg_up{collector_id=%q})`, reg.CollectorID), last); len(up) != 1 ||
		up[0].Value != float64(last.Add(-time.Second).Unix()) {
		t.Errorf("pg_up's timestamp in Prometheus: %+v, want %d", up, last.Add(-time.Second).Unix())
	}
	if m := ts.metricValue(`pganalytics_api_remote_write_samples_total{outcome="sent",url="` + prom.WriteURL() + `"}`); m != fmt.Sprint(pushes*(standbys+1)) {
		t.Errorf("sent counter %q, want %d", m, pushes*(standbys+1))
	}
}

// TestRemoteWriteNeverBlocksIngest: a receiver that is down costs ingest nothing; what does not
// fit its queue is dropped and counted.
func TestRemoteWriteNeverBlocksIngest(t *testing.T) {
	down := "http://127.0.0.1:1/api/v1/write"
	ts := startServer(t, func(c *config.Config) {
		c.RemoteWrite = []config.RemoteWrite{{URL: down, QueueSamples: 30, BatchSamples: 10}}
	})
	reg := ts.register("rw-down")
	for range 5 {
		start := time.Now()
		mustStatus(t, ts.push(reg.Token, gzipJSON(t, samplePush(20)), true), http.StatusAccepted)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a push took %s with the receiver down", d)
		}
	}
	if n := ts.sampleCount(reg.CollectorID); n != 100 {
		t.Errorf("the store holds %d samples, want 100", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		dropped := ts.metricValue(`pganalytics_api_remote_write_samples_total{outcome="dropped_queue_full",url="` + down + `"}`)
		retries := ts.metricValue(`pganalytics_api_remote_write_retries_total{url="` + down + `"}`)
		if dropped != "" && dropped != "0" && retries != "" && retries != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropped %q, retries %q: want both counted", dropped, retries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
