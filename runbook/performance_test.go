package runbook

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestQuantileOfDelta computes histogram_quantile over the increase between two scrapes, summed
// over servers, as Prometheus would.
func TestQuantileOfDelta(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name          string
		before, after []map[float64]float64
		q             float64
		want, wantN   float64
	}{
		{"nothing new", []map[float64]float64{{0.1: 5, inf: 5}}, []map[float64]float64{{0.1: 5, inf: 5}}, 0.95, 0, 0},
		{"all in the first bucket", []map[float64]float64{{0.1: 0, 1: 0, inf: 0}}, []map[float64]float64{{0.1: 100, 1: 100, inf: 100}}, 0.95, 0.095, 100},
		{"interpolated in the second", []map[float64]float64{{0.1: 0, 1: 0, inf: 0}}, []map[float64]float64{{0.1: 50, 1: 100, inf: 100}}, 0.95, 0.1 + 0.9*45/50, 100},
		{"beyond the last bucket", []map[float64]float64{{0.1: 0, 1: 0, inf: 0}}, []map[float64]float64{{0.1: 0, 1: 0, inf: 10}}, 0.95, 1, 10},
		{"two servers summed", []map[float64]float64{{0.1: 10, inf: 10}, {0.1: 0, 1: 0, inf: 0}},
			[]map[float64]float64{{0.1: 60, inf: 60}, {0.1: 0, 1: 50, inf: 50}}, 0.5, 0.1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := quantileOfDelta(tt.q, tt.before, tt.after)
			if math.Abs(got-tt.want) > 1e-9 || n != tt.wantN {
				t.Fatalf("quantile %v = %v over %v, want %v over %v", tt.q, got, n, tt.want, tt.wantN)
			}
		})
	}
}

// TestRequestBucketsFromExposition parses the server's exposition as scraped: the +Inf bucket the
// text format lists is the sample count, not one more bucket, and the stream route is left out.
func TestRequestBucketsFromExposition(t *testing.T) {
	const text = `# TYPE pganalytics_api_request_duration_seconds histogram
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/health",le="0.001"} 6
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/health",le="0.5"} 8
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/health",le="+Inf"} 8
pganalytics_api_request_duration_seconds_sum{code="200",route="GET /api/v1/health"} 0.1
pganalytics_api_request_duration_seconds_count{code="200",route="GET /api/v1/health"} 8
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/replication/stream",le="0.001"} 0
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/replication/stream",le="0.5"} 0
pganalytics_api_request_duration_seconds_bucket{code="200",route="GET /api/v1/replication/stream",le="+Inf"} 3
pganalytics_api_request_duration_seconds_sum{code="200",route="GET /api/v1/replication/stream"} 900
pganalytics_api_request_duration_seconds_count{code="200",route="GET /api/v1/replication/stream"} 3
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got := requestBuckets(scrape{families: fams})
	want := map[float64]float64{0.001: 6, 0.5: 8, math.Inf(1): 8}
	if len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for le, c := range want {
		if got[le] != c {
			t.Fatalf("buckets %v, want %v", got, want)
		}
	}
	p95, n := quantileOfDelta(0.95, []map[float64]float64{{}}, []map[float64]float64{got})
	if n != 8 || p95 <= 0.001 || p95 > 0.5 {
		t.Fatalf("p95 %v over %v", p95, n)
	}
}
