package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/demo"
)

const (
	// stackStartTimeout bounds starting a whole stack: three clusters, migrations, API, collector,
	// on a shared two-core machine.
	stackStartTimeout = 3 * time.Minute
	// collectorName is the name internal/demo registers its collector under.
	collectorName = "demo-collector"
	// logTail is how many lines of each log a failed test prints.
	logTail = 40
)

// stack is a running demo stack (internal/demo) with a connection to its metrics store.
type stack struct {
	t           *testing.T
	env         demo.Env
	stateDir    string
	interval    time.Duration
	store       *pgxpool.Pool
	collectorID string
}

// startStack starts a whole stack on a free loopback port with the collector pushing every
// interval (apiEnv: more environment for the API); it is stopped, and its clusters removed, when
// the test ends. A failed test gets the tail of the API's and the collector's logs.
func startStack(t *testing.T, interval time.Duration, workload bool, apiEnv ...string) *stack {
	t.Helper()
	return startStackWith(t, interval, func(o *demo.Options) { o.Workload, o.APIEnv = workload, apiEnv })
}

// startStackWith is startStack with the demo's options set by opt.
func startStackWith(t *testing.T, interval time.Duration, opt func(*demo.Options)) *stack {
	t.Helper()
	stateDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	envc := make(chan demo.Env, 1)
	runErr := make(chan error, 1)
	opts := demo.Options{
		BinDir:   binDir,
		StateDir: stateDir,
		APIAddr:  freeAddr(t),
		Interval: interval,
	}
	opt(&opts)
	go func() {
		runErr <- demo.Run(ctx, opts, func(ctx context.Context, env demo.Env) error {
			envc <- env
			<-ctx.Done()
			return nil
		})
	}()
	s := &stack{t: t, stateDir: stateDir, interval: interval}
	select {
	case s.env = <-envc:
	case err := <-runErr:
		cancel()
		dumpLogs(t, filepath.Join(stateDir, "demo"))
		t.Fatalf("start the demo stack: %v", err)
	case <-time.After(stackStartTimeout):
		cancel()
		<-runErr
		dumpLogs(t, filepath.Join(stateDir, "demo"))
		t.Fatalf("the demo stack did not start within %s", stackStartTimeout)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("stop the demo stack: %v", err)
		}
		if t.Failed() {
			dumpLogs(t, s.dir())
		}
	})

	pool, err := pgxpool.New(context.Background(), s.env.Vars["PGACTL_DATABASE_URL"])
	if err != nil {
		t.Fatalf("connect to the metrics store: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the stack stops: cleanups run last registered first
	s.store = pool
	queryCtx, cancelQuery := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelQuery()
	if err := pool.QueryRow(queryCtx, `SELECT id::text FROM collectors WHERE name = $1 AND deleted_at IS NULL`,
		collectorName).Scan(&s.collectorID); err != nil {
		t.Fatalf("find the demo collector's id: %v", err)
	}
	return s
}

// dir is the demo's directory: demo.env, the logs, the collector's config, token and spool.
func (s *stack) dir() string { return s.env.Vars["DEMO_DIR"] }

// spoolDir is the collector's spool directory (see internal/demo's collector.toml).
func (s *stack) spoolDir() string { return filepath.Join(s.dir(), "spool") }

// kill sends sig to the API or the collector and waits until it has exited.
func (s *stack) kill(name string, sig syscall.Signal) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.env.Stack.Kill(ctx, name, sig); err != nil {
		s.t.Fatalf("kill %s: %v", name, err)
	}
}

// restart starts the API (waiting until it is healthy) or the collector again.
func (s *stack) restart(name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.env.Stack.Restart(ctx, name); err != nil {
		s.t.Fatalf("restart %s: %v", name, err)
	}
}

// cycle is one collection cycle of the collector as the metrics store holds it: the batch's
// collection time and the collector's cumulative instance collections it reported.
type cycle struct {
	at          time.Time
	collections float64
}

// cycles returns the collector's cycles found in the store, oldest first. A batch delivered twice
// (delivery is at least once) counts once.
func (s *stack) cycles(ctx context.Context) ([]cycle, error) {
	rows, err := s.store.Query(ctx, `
		SELECT timestamp, max(value)
		FROM metrics
		WHERE collector_id = $1 AND name = 'pganalytics_collector_collections_total'
		GROUP BY timestamp
		ORDER BY timestamp`, s.collectorID)
	if err != nil {
		return nil, fmt.Errorf("read cycles: %w", err)
	}
	defer rows.Close()
	var out []cycle
	for rows.Next() {
		var c cycle
		if err := rows.Scan(&c.at, &c.collections); err != nil {
			return nil, fmt.Errorf("read cycles: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// assertNoCycleLost proves from the store that every cycle the collector ran reached it: each batch
// carries pganalytics_collector_collections_total (instances × cycles since the collector started),
// so sorted by collection time the k-th cycle must report k × instances; a batch missing anywhere
// breaks the sequence.
func (s *stack) assertNoCycleLost(t *testing.T, ctx context.Context) {
	t.Helper()
	cycles, err := s.cycles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var instances int
	if err := s.store.QueryRow(ctx, `
		SELECT count(DISTINCT labels->>'instance')
		FROM metrics
		WHERE collector_id = $1 AND name = 'pganalytics_collector_instance_collect_seconds'`, s.collectorID).Scan(&instances); err != nil {
		t.Fatal(err)
	}
	if instances != 2 {
		t.Fatalf("the collector reported %d instances, want 2 (the demo's primary and standby)", instances)
	}
	for i, c := range cycles {
		if want := float64((i + 1) * instances); c.collections != want {
			t.Fatalf("cycle %d of %d (collected %s) reports %v instance collections, want %v: a batch before it never reached the store",
				i+1, len(cycles), c.at.Format(time.RFC3339Nano), c.collections, want)
		}
	}
}

// waitCycles waits until the store holds at least n cycles of the collector.
func (s *stack) waitCycles(n int) []cycle {
	s.t.Helper()
	var got []cycle
	waitFor(s.t, time.Duration(n+15)*s.interval, fmt.Sprintf("%d collector cycles in the store", n), func(ctx context.Context) (bool, string) {
		var err error
		if got, err = s.cycles(ctx); err != nil {
			return false, err.Error()
		}
		return len(got) >= n, fmt.Sprintf("%d cycles", len(got))
	})
	return got
}

// spoolFiles lists the batch files waiting in the collector's spool (not rejected/, not temporary).
func (s *stack) spoolFiles() ([]string, error) {
	return filepath.Glob(filepath.Join(s.spoolDir(), "*.batch"))
}

// rejectedFiles lists what the collector set aside as refused by the API.
func (s *stack) rejectedFiles() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.spoolDir(), "rejected"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// waitFor polls cond (each call gets a context bounded by the poll's deadline) every 250 ms until it
// reports done; after timeout the test fails with what cond said last.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (done bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(10*time.Second))
	defer cancel()
	for {
		done, status := cond(ctx)
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen: %s", timeout, what, status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port nobody listens on right now, below the kernel's
// ephemeral range: a port from ":0" is one the kernel also hands to outgoing connections, and
// those of the tests running beside this one can take it before the process meant to listen on it
// binds it (the API then fails with "address already in use").
func freeAddr(t *testing.T) string {
	t.Helper()
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &ephemeral)
	}
	const lowest = 10000
	for range 100 {
		port := lowest + rand.IntN(max(ephemeral-lowest, 1000))
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("find a free port below the ephemeral range: 100 tries taken")
	return ""
}

// dumpLogs prints the tail of the API's and the collector's logs in dir.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log")) // api.log or api-1.log and api-2.log, haproxy.log, …
	if err != nil || len(logs) == 0 {
		t.Logf("no logs in %s (%v)", dir, err)
	}
	for _, path := range logs {
		lines, err := tail(path, logTail)
		if err != nil {
			t.Logf("%s: %v", path, err)
			continue
		}
		t.Logf("last %d lines of %s:\n%s", len(lines), path, strings.Join(lines, "\n"))
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}

// commandEnv is this process's environment without any PGACTL_ setting, with an empty
// XDG_CONFIG_HOME (so no contexts file of whoever runs the tests applies), plus extra: the tests say
// exactly which connection, credentials and state directory pgactl uses.
func commandEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGACTL_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "XDG_CONFIG_HOME="+t.TempDir())
	return append(env, extra...)
}

// cliEnv is commandEnv for pgactl against s's API as its admin, verifying the API's certificate.
func (s *stack) cliEnv(t *testing.T, extra ...string) []string {
	v := s.env.Vars
	return commandEnv(t, append([]string{"PGACTL_API_URL=" + v["PGACTL_API_URL"], "PGACTL_CA_FILE=" + v["PGACTL_CA_FILE"],
		"PGACTL_USERNAME=" + v["PGACTL_USERNAME"], "PGACTL_PASSWORD=" + v["PGACTL_PASSWORD"]}, extra...)...)
}

// runPgactl runs pgactl to completion with env, returning its stdout, stderr and exit code.
func runPgactl(t *testing.T, timeout time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("pgactl"), args...)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("pgactl %s: %v (within %s)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, timeout, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), code
}
