package agent

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// BenchmarkCycle is one full collection cycle (every family, replication included) of a local
// primary and its streaming standby, with the batch built and gzip-encoded as it would be pushed.
func BenchmarkCycle(b *testing.B) {
	p, s := pgtest.StartPrimaryStandby(b)
	doc := fmt.Sprintf(`
[api]
url = "http://127.0.0.1:1"
[[postgres]]
name = "primary"
dsn = %q
[[postgres]]
name = "standby"
dsn = %q
`, p.DSN("postgres"), s.DSN("postgres"))
	cfg, err := config.Parse("bench.toml", []byte(doc), os.Hostname)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(cfg, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx := context.Background()
	a.Cycle(ctx) // connect and prepare statements outside the measurement
	var samples, bytes int
	for b.Loop() {
		states, at := a.Cycle(ctx)
		req := a.Batch(states, at, 0, BufferStats{})
		body, err := Encode(req)
		if err != nil {
			b.Fatal(err)
		}
		for _, st := range states {
			if !st.Up || len(st.Failures) > 0 {
				b.Fatalf("%s: up=%v err=%v failures=%v", st.Name, st.Up, st.Err, st.Failures)
			}
		}
		samples, bytes = len(req.Metrics), len(body)
	}
	b.ReportMetric(float64(samples), "samples/cycle")
	b.ReportMetric(float64(bytes), "gzip-bytes/cycle")
}
