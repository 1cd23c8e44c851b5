package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/smoke"
)

// demoReady is the last line of the summary `pgactl demo --no-console` prints once everything runs.
const demoReady = "Press Ctrl-C to stop the demo"

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestDemoCommand runs `pgactl demo --no-console` as a user would, checks that metrics keep arriving
// with the deployment plan's own query (Phase 2 Step 5), runs `pgactl smoke -o json` against it with
// its demo.env exported, then interrupts it like Ctrl-C does and checks that every process it
// started is gone and its clusters' directory removed.
func TestDemoCommand(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	// The demo's own collector interval (5 s): smoke's metrics-freshness allows two intervals, which
	// a loaded machine could overrun at a shorter one.
	cmd := exec.Command(bin("pgactl"), "demo", "--no-console", "--bin-dir", binDir, "--state-dir", stateDir,
		"--addr", freeAddr(t))
	cmd.Env = commandEnv(t)
	stdout := &watchedBuffer{marker: demoReady, seen: make(chan struct{})}
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgactl demo: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // the test failed before interrupting it: do not leave the stack behind
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("pgactl demo stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			dumpLogs(t, filepath.Join(stateDir, "demo"))
		}
	})

	select {
	case <-stdout.seen:
	case <-exited:
		t.Fatalf("pgactl demo exited before it was ready: %v", waitErr)
	case <-time.After(stackStartTimeout):
		t.Fatalf("pgactl demo printed no %q within %s", demoReady, stackStartTimeout)
	}
	vars, err := readEnvFile(filepath.Join(stateDir, "demo", "demo.env"))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store := connect(t, ctx, vars["PGACTL_DATABASE_URL"], "")
	var id string
	if err := store.QueryRow(ctx, `SELECT id::text FROM collectors WHERE name = $1 AND deleted_at IS NULL`, collectorName).Scan(&id); err != nil {
		t.Fatalf("find the demo collector: %v", err)
	}
	if !uuidRe.MatchString(id) {
		t.Fatalf("collector id %q is not a UUID", id)
	}
	// The plan's query as an operator pastes it, with the real id in place of '...'.
	planQuery := "SELECT COUNT(*) FROM metrics WHERE collector_id = '" + id + "';"
	count := func(ctx context.Context) (int64, error) {
		var n int64
		err := store.QueryRow(ctx, planQuery, pgx.QueryExecModeSimpleProtocol).Scan(&n)
		return n, err
	}
	var first, second int64
	waitFor(t, time.Minute, "metrics from the demo collector", func(ctx context.Context) (bool, string) {
		first, err = count(ctx)
		return err == nil && first > 0, fmt.Sprintf("count %d, err %v", first, err)
	})
	waitFor(t, time.Minute, "the metrics count to grow with the next cycle", func(ctx context.Context) (bool, string) {
		second, err = count(ctx)
		return err == nil && second > first, fmt.Sprintf("count %d (was %d), err %v", second, first, err)
	})
	t.Logf("%s -> %d, then %d", planQuery, first, second)

	t.Run("smoke", func(t *testing.T) {
		env := commandEnv(t)
		for k, v := range vars { // what `set -a; . demo.env; set +a` exports
			env = append(env, k+"="+v)
		}
		out, errOut, code := runPgactl(t, 3*time.Minute, env, "smoke", "-o", "json")
		if code != 0 {
			t.Errorf("pgactl smoke -o json: exit %d, want 0\nstderr:\n%s", code, errOut)
		}
		var report struct {
			Checks []struct {
				Name    string       `json:"name"`
				Status  smoke.Status `json:"status"`
				Message string       `json:"message"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(out), &report); err != nil {
			t.Fatalf("decode pgactl smoke -o json: %v\n%s", err, out)
		}
		got := map[string]smoke.Status{}
		for _, c := range report.Checks {
			got[c.Name] = c.Status
			want := smoke.StatusPass // TLS included: the demo's API is on HTTPS from its own CA
			if c.Status != want {
				t.Errorf("check %s: %s (%s), want %s", c.Name, c.Status, c.Message, want)
			}
		}
		for _, name := range smoke.Checks() {
			if _, ok := got[name]; !ok {
				t.Errorf("check %s did not run", name)
			}
		}
	})

	children, err := descendants(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for _, p := range children {
		byName[p.comm]++
	}
	// The API, the collector, and the store's, primary's and standby's postmasters at least.
	for name, want := range map[string]int{"pganalytics-api": 1, "pganalytics": 1, "postgres": 3} {
		if byName[name] < want {
			t.Fatalf("%d %s processes below pgactl demo, want at least %d (all: %v)", byName[name], name, want, byName)
		}
	}
	scratch, err := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("pgcluster-%d-*", cmd.Process.Pid)))
	if err != nil || len(scratch) != 1 {
		t.Fatalf("pgactl demo's cluster directory: found %v (err %v), want one", scratch, err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("interrupt pgactl demo: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("pgactl demo did not exit within a minute of SIGINT")
	}
	if waitErr != nil {
		t.Errorf("pgactl demo after SIGINT: %v, want exit 0", waitErr)
	}
	waitFor(t, 30*time.Second, "every process pgactl demo started to be gone and its clusters removed", func(context.Context) (bool, string) {
		var alive []string
		for _, p := range children {
			if p.alive() {
				alive = append(alive, fmt.Sprintf("%s[%d]", p.comm, p.pid))
			}
		}
		_, err := os.Stat(scratch[0])
		removed := errors.Is(err, os.ErrNotExist)
		return len(alive) == 0 && removed, fmt.Sprintf("still running: %v; %s removed: %t", alive, scratch[0], removed)
	})
	for _, secret := range []string{"demo.env", "monitor.password", "collector.token"} {
		if _, err := os.Stat(filepath.Join(stateDir, "demo", secret)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s outlives the demo (stat: %v): its credentials must go with the stack", secret, err)
		}
	}
	t.Logf("pgactl demo ran %d processes below it %v; all gone after SIGINT, %s removed", len(children), byName, scratch[0])
}

// proc identifies a process across pid reuse by its start time.
type proc struct {
	pid   int
	start string // field 22 of /proc/PID/stat, in clock ticks since boot
	comm  string
}

// readStat parses /proc/PID/stat: the command name (in parentheses, may hold spaces), state,
// parent pid and start time.
func readStat(pid int) (comm, state string, ppid int, start string, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", 0, "", err
	}
	s := string(raw)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return "", "", 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[rp+1:]) // fields[0] is field 3 (state)
	if len(fields) < 20 {
		return "", "", 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, err = strconv.Atoi(fields[1])
	return s[lp+1 : rp], fields[0], ppid, fields[19], err
}

// descendants lists every live process below root.
func descendants(root int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _, ppid, start, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[ppid] = append(children[ppid], proc{pid: pid, start: start, comm: comm})
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out, nil
}

// alive says whether the process still runs: same pid, same start time, not a zombie.
func (p proc) alive() bool {
	_, state, _, start, err := readStat(p.pid)
	return err == nil && start == p.start && state != "Z"
}

// readEnvFile reads a KEY=VALUE file as pgactl demo writes it.
func readEnvFile(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		vars[k] = v
	}
	return vars, nil
}

// lockedBuffer is an output buffer safe to read while a process writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watchedBuffer is a lockedBuffer that closes seen once marker has been written to it.
type watchedBuffer struct {
	lockedBuffer
	marker string
	seen   chan struct{}
	once   sync.Once
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	if strings.Contains(w.String(), w.marker) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// TestDemoCleanupWithoutItsReader: `pgactl demo | tee log` and Ctrl-C, which ends tee first. The
// demo's last lines then go to a closed pipe; it must still stop everything and remove its
// credentials.
func TestDemoCleanupWithoutItsReader(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin("pgactl"), "demo", "--no-console", "--no-workload", "--bin-dir", binDir, "--state-dir", stateDir,
		"--addr", freeAddr(t))
	cmd.Env = commandEnv(t)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Read like tee until the demo runs, then go away as tee does on Ctrl-C.
	sc := bufio.NewScanner(r)
	for sc.Scan() && !strings.Contains(sc.Text(), demoReady) {
	}
	r.Close()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("pgactl demo did not exit within a minute of SIGINT with its reader gone")
	}
	for _, secret := range []string{"demo.env", "monitor.password", "collector.token"} {
		if _, err := os.Stat(filepath.Join(stateDir, "demo", secret)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s outlives the demo whose reader went away (stat: %v)", secret, err)
		}
	}
}
