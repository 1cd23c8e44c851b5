package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// TestPushBySeriesID is the collector's steady state: a push by name hands back the series ids,
// later pushes send values by id only, and an id that is not the collector's stores nothing.
func TestPushBySeriesID(t *testing.T) {
	dsn, st, pool := testDB(t)
	ts := startServerOn(t, dsn, st, pool)
	alice, bob := ts.register("alice"), ts.register("bob")

	first := samplePush(3)
	r := ts.push(alice.Token, gzipJSON(t, first), true)
	mustStatus(t, r, http.StatusAccepted)
	var named api.PushResponse
	r.decode(t, &named)
	if named.Accepted != 3 || len(named.SeriesIDs) != 3 || slices.Contains(named.SeriesIDs, 0) {
		t.Fatalf("push by name answered %+v, want 3 series ids", named)
	}

	at := first.CollectedAt.Add(time.Second)
	byID := api.PushRequest{CollectedAt: at, ByID: &api.SeriesSamples{SeriesIDs: named.SeriesIDs, Values: []float64{10, 11, 12}}}
	r = ts.push(alice.Token, gzipJSON(t, byID), true)
	mustStatus(t, r, http.StatusAccepted)
	var got api.PushResponse
	r.decode(t, &got)
	if got.Accepted != 3 || got.SeriesIDs != nil {
		t.Fatalf("push by id answered %+v", got)
	}
	// Stored under the series the ids name: same names and labels as the push by name.
	rows, err := pool.Query(context.Background(), `
		SELECT se.labels->>'application_name', sa.value FROM samples sa JOIN series se ON se.id = sa.series_id
		 WHERE sa.collector_id = $1 AND sa."timestamp" = $2 ORDER BY sa.value`, alice.CollectorID, at)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var app string
		var v float64
		if err := rows.Scan(&app, &v); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, fmt.Sprintf("%s=%g", app, v))
	}
	if want := []string{"standbya=10", "standbyb=11", "standbyc=12"}; !slices.Equal(stored, want) {
		t.Fatalf("stored %v, want %v", stored, want)
	}

	// A server with a cold cache over the same store finds the ids in the series table.
	st2, err := store.Open(context.Background(), dsn, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st2.Close)
	other := startServerOn(t, dsn, st2, pool)
	mustStatus(t, other.push(alice.Token, gzipJSON(t, byID), true), http.StatusAccepted)

	before := ts.sampleCount(bob.CollectorID)
	stolen := api.PushRequest{CollectedAt: at, ByID: &api.SeriesSamples{SeriesIDs: named.SeriesIDs[:1], Values: []float64{1}}}
	for _, srv := range []*testServer{ts, other} {
		r = srv.push(bob.Token, gzipJSON(t, stolen), true)
		if r.status != http.StatusConflict || r.errorCode() != codeUnknownSeries ||
			!strings.Contains(r.errorMessage(), "1 of 1 series ids are not this collector's") {
			t.Fatalf("another collector's series id: %d %s", r.status, r.body)
		}
	}
	mixed := samplePush(1)
	mixed.ByID = &api.SeriesSamples{SeriesIDs: []int64{named.SeriesIDs[0], 1 << 40}, Values: []float64{1, 2}}
	if r = ts.push(alice.Token, gzipJSON(t, mixed), true); r.status != http.StatusConflict {
		t.Fatalf("an unknown id among known ones: %d %s", r.status, r.body)
	}
	if n := ts.sampleCount(bob.CollectorID); n != before {
		t.Fatalf("a refused push stored %d samples", n-before)
	}
	if v := ts.metricValue(`pganalytics_api_ingest_errors_total{reason="unknown_series"}`); v != "2" && v != "3" {
		t.Fatalf("ingest errors for unknown series: %q", v)
	}
}

func TestPushBySeriesIDRules(t *testing.T) {
	now := fuzzNow.Format(time.RFC3339)
	push := func(byID string) string { return `{"collected_at":"` + now + `","by_id":` + byID + `}` }
	lim := fuzzLimits()
	lim.maxSamples = 3
	cases := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"accepted", push(`{"series_ids":[1,2],"values":[0.5,-3e3]}`), 0, "", ""},
		{"with timestamps", push(`{"series_ids":[1],"values":[1],"timestamps_ms":[` + fmt.Sprint(fuzzNow.Add(-time.Minute).UnixMilli()) + `]}`), 0, "", ""},
		{"by name and by id together", `{"collected_at":"` + now + `","metrics":[` + goodSample + `],"by_id":{"series_ids":[1],"values":[1]}}`, 0, "", ""},
		{"nothing by id", push(`{"series_ids":[],"values":[]}`), 400, codeEmptyBatch, "no samples"},
		{"null", push(`null`), 400, codeEmptyBatch, "no samples"},
		{"not an object", push(`[1]`), 400, codeMalformedJSON, "by_id must be an object"},
		{"unknown field", push(`{"series_ids":[1],"values":[1],"labels":[]}`), 400, codeMalformedJSON, `by_id: unknown field "labels"`},
		{"a field twice", push(`{"series_ids":[1],"values":[1],"values":[2]}`), 400, codeMalformedJSON, "duplicate"},
		{"columns of different lengths", push(`{"series_ids":[1,2],"values":[1]}`), 400, codeValidation, "2 series_ids but 1 values"},
		{"timestamps for some", push(`{"series_ids":[1,2],"values":[1,2],"timestamps_ms":[1]}`), 400, codeValidation, "2 series_ids but 1 timestamps_ms"},
		{"a fractional id", push(`{"series_ids":[1.5],"values":[1]}`), 400, codeMalformedJSON, "series_ids[0]: expected a whole number"},
		{"an id out of range", push(`{"series_ids":[99999999999999999999],"values":[1]}`), 400, codeMalformedJSON, "series_ids[0]: expected a whole number"},
		{"a zero id", push(`{"series_ids":[0],"values":[1]}`), 400, codeInvalidSample, "series_ids[0]: 0 is not a series id"},
		{"a string value", push(`{"series_ids":[1],"values":["NaN"]}`), 400, codeMalformedJSON, "values[0]: expected a number, got string"},
		{"an infinite value", push(`{"series_ids":[1],"values":[1e999]}`), 400, codeMalformedJSON, "values[0]: expected a finite number"},
		{"a future timestamp", push(`{"series_ids":[1],"values":[1],"timestamps_ms":[` + fmt.Sprint(fuzzNow.Add(time.Hour).UnixMilli()) + `]}`), 400, codeInvalidSample, "in the future"},
		{"a timestamp past retention", push(`{"series_ids":[1],"values":[1],"timestamps_ms":[0]}`), 400, codeInvalidSample, "older than the retention"},
		{"too many", push(`{"series_ids":[1,2,3,4],"values":[1,2,3,4]}`), 413, codePayloadTooLarge, "more than 3 samples"},
		{"too many in all", `{"collected_at":"` + now + `","metrics":[` + goodSample + `,` + goodSample + `],"by_id":{"series_ids":[1,2],"values":[1,2]}}`, 413, codePayloadTooLarge, "more than 3 samples"},
		{"a number padded past its bound", push(`{"series_ids":[` + strings.Repeat(" ", 100) + `1],"values":[1]}`), 413, codePayloadTooLarge, "by_id.series_ids exceeds 64 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodePush(strings.NewReader(tc.body), lim)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if req.ByID.Len() == 0 || len(req.ByID.Values) != req.ByID.Len() {
					t.Fatalf("decoded %+v", req.ByID)
				}
				return
			}
			if err == nil || err.status != tc.status || err.code != tc.code || !strings.Contains(err.message, tc.msg) {
				t.Fatalf("got %v, want %d %s %q", err, tc.status, tc.code, tc.msg)
			}
		})
	}
}
