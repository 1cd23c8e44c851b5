package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/demo"
)

// simulatedCollectors push through haproxy during the rolling deploy, one push a second each
// (below the per-collector rate limit), beside the demo's real collector.
const (
	simulatedCollectors = 20
	samplesPerPush      = 25
)

// TestRollingDeployUnderLoad runs the shipped runbook's production API deployment (a rolling step
// over both API servers of `pgactl demo --ha`) while the real collector and 20 simulated ones push
// through haproxy and a console-like client follows the replication stream: no push fails, no
// sample is lost, both servers end up restarted, and the stream reconnects.
func TestRollingDeployUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the rolling deploy")
	}
	t.Parallel()
	const interval = time.Second
	s := startStackWith(t, interval, func(o *demo.Options) { o.HA, o.Workload = true, true })
	s.waitCycles(3)
	pids := map[string]int{}
	for _, name := range []string{demo.ProcessAPI1, demo.ProcessAPI2} {
		pids[name] = s.env.Stack.PID(name)
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	load := startPushLoad(t, ctx, s, simulatedCollectors)
	stream := followStream(ctx, s.apiClient(t))
	waitFor(t, 30*time.Second, "the stream's first topology", func(context.Context) (bool, string) {
		n := stream.topologies.Load()
		return n > 0, fmt.Sprintf("%d topologies", n)
	})

	began := time.Now()
	env := s.cliEnv(t, "PGACTL_STATE_DIR="+s.stateDir)
	for _, target := range []string{"production/deploy-api", "production/secondary-api"} {
		out, errOut, code := runPgactl(t, 5*time.Minute, env, "runbook", "run", target, "--env", "demo", "--yes")
		if code != 0 {
			t.Fatalf("pgactl runbook run %s: exit %d\nstdout:\n%s\nstderr:\n%s", target, code, out, errOut)
		}
		t.Logf("pgactl runbook run %s:\n%s", target, out)
	}
	took := time.Since(began)
	reconnectsAtEnd := stream.reconnects.Load()
	topologiesAtEnd := stream.topologies.Load()
	time.Sleep(3 * interval) // the load goes on a little past the deploy
	stopLoad()
	pushes := load.wait()

	for name, before := range pids {
		if after := s.env.Stack.PID(name); after == before || after == 0 {
			t.Errorf("%s: pid %d before, %d after: not restarted by the rolling deploy", name, before, after)
		}
	}
	t.Logf("rolling deploy of 2 API servers took %s; simulated collectors: %d pushes accepted, %d failed; stream reconnected %d times",
		took.Round(100*time.Millisecond), pushes.ok, len(pushes.failures), reconnectsAtEnd)
	if len(pushes.failures) > 0 {
		t.Errorf("%d pushes failed during the rolling deploy, e.g. %v", len(pushes.failures), pushes.failures[0])
	}

	// Every accepted sample is in the store, and every cycle of the real collector, without a failed push.
	qctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stored int
	if err := s.store.QueryRow(qctx, `SELECT count(*) FROM metrics WHERE collector_id::text = ANY($1::text[])`, pushes.ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if want := pushes.ok * samplesPerPush; stored != want {
		t.Errorf("simulated collectors: %d samples in the store, %d accepted: %d lost", stored, want, want-stored)
	}
	s.assertNoCycleLost(t, qctx)
	var pushFailures float64
	if err := s.store.QueryRow(qctx, `
		SELECT coalesce(max(value), 0) FROM metrics
		WHERE collector_id = $1 AND name = 'pganalytics_collector_push_failures_total'`, s.collectorID).Scan(&pushFailures); err != nil {
		t.Fatal(err)
	}
	if pushFailures != 0 {
		t.Errorf("the real collector counted %v failed pushes", pushFailures)
	}

	// Streams end with each server's drain and come back through haproxy to the server that stays.
	if reconnectsAtEnd == 0 {
		t.Error("the replication stream never reconnected: the draining servers did not end it")
	}
	waitFor(t, 30*time.Second, "topologies on the reconnected stream", func(context.Context) (bool, string) {
		n := stream.topologies.Load()
		return n > topologiesAtEnd, fmt.Sprintf("%d topologies (%d at the deploy's end)", n, topologiesAtEnd)
	})
}

// pushResult is what the simulated collectors did.
type pushResult struct {
	ok       int
	failures []error
	ids      []string
}

type pushLoad struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	res pushResult
}

func (l *pushLoad) wait() pushResult {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// startPushLoad registers n simulated collectors through the stack's API URL (haproxy) and has each
// push one batch a second until ctx ends.
func startPushLoad(t *testing.T, ctx context.Context, s *stack, n int) *pushLoad {
	t.Helper()
	l := &pushLoad{}
	base, err := client.New(client.Options{BaseURL: s.env.Vars["PGACTL_API_URL"], CAFile: s.env.Vars["PGACTL_CA_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		reg, err := base.Register(t.Context(), s.env.Vars["REGISTRATION_SECRET"],
			api.RegisterRequest{Name: fmt.Sprintf("sim-%02d", i), Hostname: fmt.Sprintf("sim-%02d.example", i)})
		if err != nil {
			t.Fatalf("register simulated collector %d: %v", i, err)
		}
		l.res.ids = append(l.res.ids, reg.CollectorID)
		c := base.WithToken(reg.Token)
		l.wg.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				body, err := simulatedPush(i, seq)
				if err != nil {
					panic(err)
				}
				// A push runs to its end even when the load stops meanwhile: its answer counts.
				resp, err := c.PushGzip(context.WithoutCancel(ctx), body)
				l.mu.Lock()
				switch {
				case err != nil:
					l.res.failures = append(l.res.failures, fmt.Errorf("sim-%02d push %d: %w", i, seq, err))
				case resp.Accepted != samplesPerPush:
					l.res.failures = append(l.res.failures, fmt.Errorf("sim-%02d push %d: %d accepted", i, seq, resp.Accepted))
				default:
					l.res.ok++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func simulatedPush(collector, seq int) ([]byte, error) {
	req := api.PushRequest{CollectedAt: time.Now().UTC().Truncate(time.Millisecond)}
	for k := range samplesPerPush {
		req.Metrics = append(req.Metrics, api.Sample{
			Name:   "pg_replication_replay_lag_bytes",
			Value:  float64(seq),
			Labels: map[string]string{"instance": fmt.Sprintf("sim-%02d:5432", collector), "application_name": fmt.Sprintf("standby%02d", k)},
		})
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// streamFollower follows the replication stream as the console does: reconnect when it ends.
type streamFollower struct {
	topologies atomic.Int64
	reconnects atomic.Int64
}

func followStream(ctx context.Context, c *client.Client) *streamFollower {
	f := &streamFollower{}
	go func() {
		for ctx.Err() == nil {
			// However it ends (the server drained, the connection broke), follow it again.
			_ = c.Stream(ctx, client.StreamHandlers{Topology: func(api.CollectorTopology) { f.topologies.Add(1) }})
			if ctx.Err() != nil {
				return
			}
			f.reconnects.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second): // the server's retry hint
			}
		}
	}()
	return f
}

// TestLoginLimitHoldsThroughLoadBalancer sends logins from one client through haproxy to two API
// servers as fast as they answer: the deployment admits what the limit allows one client (the
// burst plus the refill meanwhile), not what two per-server buckets would.
func TestLoginLimitHoldsThroughLoadBalancer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the HA stack")
	}
	t.Parallel()
	const (
		perMinute = 100 // the default RATE_LIMIT_PER_MINUTE
		attempts  = 300
		workers   = 4
	)
	s := startStackWith(t, 5*time.Second, func(o *demo.Options) { o.HA = true })
	c, err := client.New(client.Options{BaseURL: s.env.Vars["PGACTL_API_URL"], CAFile: s.env.Vars["PGACTL_CA_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	var admitted, limited atomic.Int64
	var others sync.Map
	jobs := make(chan int)
	var wg sync.WaitGroup
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for range jobs {
				_, err := c.Login(t.Context(), s.env.Vars["PGACTL_USERNAME"], s.env.Vars["PGACTL_PASSWORD"])
				var apiErr *client.APIError
				switch {
				case err == nil:
					admitted.Add(1)
				case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
					limited.Add(1)
				default:
					others.Store(err.Error(), true)
				}
			}
		})
	}
	// PGA_E2E_LOGIN_WINDOW=1m keeps logging in for that long instead of 300 attempts: the
	// issue's "logins admitted per minute" (a full bucket, then its refill).
	window, _ := time.ParseDuration(os.Getenv("PGA_E2E_LOGIN_WINDOW"))
	for i := 0; window > 0 && time.Since(began) < window || window <= 0 && i < attempts; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(began)
	others.Range(func(k, _ any) bool { t.Errorf("a login neither admitted nor rate limited: %v", k); return true })

	budget := perMinute + elapsed.Seconds()*perMinute/60 // one bucket: the burst, plus the refill meanwhile
	got := admitted.Load()
	t.Logf("%d of %d logins admitted in %s through haproxy to 2 API servers (%d refused with 429); the limit allows one client %.0f, per-server buckets would allow %.0f",
		got, got+limited.Load(), elapsed.Round(100*time.Millisecond), limited.Load(), budget, 2*budget)
	// The stack's own start-up health checks came from the same address, so a few tokens are gone.
	if float64(got) > 1.1*budget || float64(got) < 0.9*perMinute {
		t.Errorf("%d logins admitted, want within 10 %% of %.0f", got, budget)
	}
}
