package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const testTimeout = 2 * time.Minute

func testBinaries(t *testing.T) Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := BinariesFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spec, _ := ParseSpec(os.Getenv(EnvVersion)); spec.Major != 0 && spec.Major != b.Major {
		t.Fatalf("%s=%s resolved to %+v", EnvVersion, os.Getenv(EnvVersion), b)
	}
	return b
}

func testScratch(t *testing.T) *Scratch {
	t.Helper()
	s, err := NewScratch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func startTest(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func queryString(t *testing.T, c *Cluster, sql string) string {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to %s: %v", c.Name, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s on %s: %v", sql, c.Name, err)
	}
	return s
}

// eventually polls cond until it holds; the deadline only bounds a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := poll(testContext(t), func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestClusterLifecycle(t *testing.T) {
	bins := testBinaries(t)
	tests := []struct {
		name       string
		persistent bool
	}{
		{name: "child", persistent: false},
		{name: "persistent", persistent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := startTest(t, Config{
				Name: "lifecycle", BaseDir: testScratch(t).Dir, Binaries: bins,
				Persistent: tt.persistent, Settings: map[string]string{"work_mem": "5MB"},
			})
			if got, want := queryString(t, c, "SELECT (current_setting('server_version_num')::int / 10000)::text"), fmt.Sprint(bins.Major); got != want {
				t.Errorf("server major = %s, want %s", got, want)
			}
			for setting, want := range map[string]string{"work_mem": "5MB", "fsync": "off", "listen_addresses": "127.0.0.1"} {
				if got := queryString(t, c, "SELECT current_setting('"+setting+"')"); got != want {
					t.Errorf("%s = %q, want %q", setting, got, want)
				}
			}
			if info, err := os.Stat(c.LogFile()); err != nil || info.Size() == 0 {
				t.Errorf("server log %s is missing or empty (%v)", c.LogFile(), err)
			}

			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if c.Running() {
				t.Fatal("running after Stop")
			}
			if conn, err := pgx.Connect(ctx, c.DSN("postgres")); err == nil {
				conn.Close(ctx)
				t.Fatal("connected after Stop")
			}

			opened, err := Open(c.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if opened.Port != c.Port || opened.Major != bins.Major || opened.Persistent != tt.persistent {
				t.Fatalf("Open = port %d major %d persistent %v, want %d %d %v",
					opened.Port, opened.Major, opened.Persistent, c.Port, bins.Major, tt.persistent)
			}
			if err := opened.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if got := queryString(t, opened, "SELECT 'back'"); got != "back" {
				t.Fatalf("after restart got %q", got)
			}
			if err := opened.Start(ctx); err == nil {
				t.Error("starting a running cluster succeeded")
			}

			if err := opened.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			if opened.Running() || c.Running() {
				t.Error("running after Remove")
			}
			if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cluster dir still there after Remove: %v", err)
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	bins := testBinaries(t)
	type failure struct {
		name    string
		cfg     Config
		wantErr string
	}
	tests := []failure{
		{name: "bad setting shows the server log", cfg: Config{Name: "bad", Settings: map[string]string{"shared_buffers": "plenty"}}, wantErr: "server log"},
		{name: "unknown setting", cfg: Config{Name: "bad", Settings: map[string]string{"no_such_setting": "1"}}, wantErr: "no_such_setting"},
		{name: "setting name injection", cfg: Config{Name: "bad", Settings: map[string]string{"port = 1\nfsync": "on"}}, wantErr: "invalid setting name"},
		{name: "setting value injection", cfg: Config{Name: "bad", Settings: map[string]string{"work_mem": "4MB'\nfsync = 'on"}}, wantErr: "line breaks"},
		{name: "name with a slash", cfg: Config{Name: "../escape"}, wantErr: "invalid cluster name"},
		{name: "upper-case name", cfg: Config{Name: "Primary"}, wantErr: "invalid cluster name"},
		{name: "no binaries", cfg: Config{Name: "nobin", Binaries: Binaries{}}, wantErr: "binaries are required"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, failure{name: "base dir the server user cannot reach", cfg: Config{Name: "private"}, wantErr: "cannot enter"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := testScratch(t).Dir
			if tt.cfg.Name == "private" {
				base = t.TempDir() // root's, mode 0700
			}
			tt.cfg.BaseDir = base
			if tt.cfg.Name != "nobin" {
				tt.cfg.Binaries = bins
			}
			c, err := Start(testContext(t), tt.cfg)
			if err == nil {
				c.Remove(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir(base); len(entries) != 0 {
				t.Errorf("failed Start left %v behind", entries)
			}
		})
	}
}

// TestPortHeldByAnotherCluster: a server answering on the port is not proof that ours started.
// With the port given (not picked) and held by another cluster, Start must fail as "port in use",
// for both kinds of server; with the port picked, it must move and come up as itself.
func TestPortHeldByAnotherCluster(t *testing.T) {
	bins := testBinaries(t)
	base := testScratch(t).Dir
	other := startTest(t, Config{Name: "other", BaseDir: base, Binaries: bins})
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			c, err := Start(testContext(t), Config{Name: fmt.Sprintf("taken_%v", persistent), BaseDir: base, Binaries: bins,
				Port: other.Port, Persistent: persistent})
			if err == nil {
				c.Remove(context.Background())
				t.Fatalf("Start on port %d, which cluster %q holds, succeeded", other.Port, other.Name)
			}
			if !errors.Is(err, errPortInUse) {
				t.Fatalf("error %v is not a port-in-use error", err)
			}
		})
	}
}

func TestStreamingStandby(t *testing.T) {
	bins := testBinaries(t)
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			ctx := testContext(t)
			base := testScratch(t).Dir
			primary := startTest(t, Config{Name: "primary", BaseDir: base, Binaries: bins, Persistent: persistent})
			standby, err := StartStandby(ctx, primary, Config{Name: "standby1", Persistent: persistent})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { standby.Remove(context.Background()) })

			if got := queryString(t, standby, "SELECT pg_is_in_recovery()::text"); got != "true" {
				t.Fatalf("standby pg_is_in_recovery = %s", got)
			}
			if got := queryString(t, primary, "SELECT string_agg(slot_name || ':' || active, ',') FROM pg_replication_slots"); got != "standby1:true" {
				t.Errorf("primary slots = %q, want standby1 active", got)
			}
			if got := queryString(t, primary, "SELECT string_agg(application_name || ':' || state, ',') FROM pg_stat_replication"); got != "standby1:streaming" {
				t.Errorf("pg_stat_replication = %q", got)
			}
			if err := primary.exec(ctx, "postgres", "CREATE TABLE t AS SELECT generate_series(1, 100) AS n"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "insert on the primary reaches the standby", func() bool {
				ok, _ := standby.queryBool(ctx, "postgres", "SELECT count(*) = 100 FROM t")
				return ok
			})
		})
	}
}

// TestStandbyWhenPrimaryPortIsTaken: StartStandby briefly stops the primary; another server (here a
// listener polling for the port) may take the primary's port meanwhile. The primary must come back
// on a new port and the standby must stream from it, not fail (seen in CI with parallel tests).
func TestStandbyWhenPrimaryPortIsTaken(t *testing.T) {
	bins := testBinaries(t)
	ctx := testContext(t)
	base := testScratch(t).Dir
	primary := startTest(t, Config{Name: "primary", BaseDir: base, Binaries: bins})
	oldPort := primary.Port

	taken := make(chan net.Listener, 1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", oldPort)); err == nil {
				taken <- l
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	standby, err := StartStandby(ctx, primary, Config{Name: "standby1"})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Remove(context.Background()) })
	select {
	case l := <-taken:
		defer l.Close()
	default:
		t.Fatal("the test never took the primary's port while it was down")
	}
	if primary.Port == oldPort {
		t.Fatalf("primary still claims port %d, which another listener holds", oldPort)
	}
	if got := queryString(t, primary, "SELECT string_agg(application_name || ':' || state, ',') FROM pg_stat_replication"); got != "standby1:streaming" {
		t.Errorf("pg_stat_replication = %q, want the standby streaming from the moved primary", got)
	}
}

func TestLogicalReplication(t *testing.T) {
	ctx := testContext(t)
	base := testScratch(t).Dir
	bins := testBinaries(t)
	pub := startTest(t, Config{Name: "publisher", BaseDir: base, Binaries: bins, Settings: map[string]string{"wal_level": "logical"}})
	sub := startTest(t, Config{Name: "subscriber", BaseDir: base, Binaries: bins})
	for _, c := range []*Cluster{pub, sub} {
		if err := c.exec(ctx, "postgres", "CREATE TABLE items (id int PRIMARY KEY, name text)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.exec(ctx, "postgres", "INSERT INTO items VALUES (1, 'copied')"); err != nil {
		t.Fatal(err)
	}
	if err := Subscribe(ctx, pub, sub, "postgres", "items_sub", "public.items"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, sub, "SELECT string_agg(name, ',') FROM items"); got != "copied" {
		t.Fatalf("after initial sync the subscriber has %q", got)
	}
	if err := pub.exec(ctx, "postgres", "INSERT INTO items VALUES (2, 'streamed')"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "insert on the publisher reaches the subscriber", func() bool {
		ok, _ := sub.queryBool(ctx, "postgres", "SELECT count(*) = 2 FROM items")
		return ok
	})
	if err := Subscribe(ctx, pub, sub, "postgres", "bad", "items; DROP TABLE items"); err == nil {
		t.Error("Subscribe accepted a hostile table name")
	}
}

// TestKilledOwnerLeavesNothing kills (SIGKILL) a process that started a
// child and a persistent cluster in a scratch dir, and checks that the
// servers and the directory go with it.
func TestKilledOwnerLeavesNothing(t *testing.T) {
	testBinaries(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "PGCLUSTER_HELPER=1")
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var dir string
	var childPID, persistentPID int
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if n, _ := fmt.Sscanf(sc.Text(), "OWNER %s %d %d", &dir, &childPID, &persistentPID); n == 3 {
			break
		}
	}
	if childPID == 0 || persistentPID == 0 {
		t.Fatal("helper did not start its clusters")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, pid := range []int{childPID, persistentPID} {
		eventually(t, "postgres exits with its owner", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
	}
	eventually(t, "the reaper removes the scratch dir", func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestHelperOwner is the process TestKilledOwnerLeavesNothing kills.
func TestHelperOwner(t *testing.T) {
	if os.Getenv("PGCLUSTER_HELPER") != "1" {
		t.Skip("run by TestKilledOwnerLeavesNothing")
	}
	s, err := NewScratch()
	if err != nil {
		t.Fatal(err)
	}
	var pids []any
	for _, persistent := range []bool{false, true} {
		c, err := Start(testContext(t), Config{Name: fmt.Sprintf("owned%v", persistent), BaseDir: s.Dir, Binaries: testBinaries(t), Persistent: persistent})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, c.postmasterPID())
	}
	fmt.Printf("OWNER %s %d %d\n", append([]any{s.Dir}, pids...)...)
	io.Copy(io.Discard, os.Stdin) // killed before EOF, unless the parent test died
	t.Fatal("not killed")
}

func TestSweepRemovesOrphans(t *testing.T) {
	// A scratch dir of a process that is gone (pid 0x7ffffffe is above pid_max).
	orphan := filepath.Join(os.TempDir(), scratchPrefix+"2147483646-test")
	// Built aside and renamed into place whole: other test binaries sweep the same temp dir, and one
	// may remove the orphan at any moment once it is there (which this test accepts).
	stage, err := os.MkdirTemp("", "orphan-stage-")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(stage, "pg", "data", "PG_VERSION"), "16\n")
	os.RemoveAll(orphan)
	if err := os.Rename(stage, orphan); err != nil {
		os.RemoveAll(stage)
		t.Fatal(err)
	}
	live := testScratch(t)
	sweepScratch()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(orphan)
		t.Errorf("orphan scratch dir survived the sweep: %v", err)
	}
	if _, err := os.Stat(live.Dir); err != nil {
		t.Errorf("the sweep removed a live scratch dir: %v", err)
	}
}

// benchSetup resolves the binaries and makes a scratch dir that is closed when b ends.
func benchSetup(b *testing.B) (Binaries, *Scratch) {
	b.Helper()
	bins, err := BinariesFromEnv(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewScratch()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return bins, s
}

// BenchmarkStart measures creating, starting and removing a plain cluster.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	bins, s := benchSetup(b)
	for i := 0; b.Loop(); i++ {
		c, err := Start(ctx, Config{Name: fmt.Sprintf("bench%d", i), BaseDir: s.Dir, Binaries: bins})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Remove(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkStartPrimaryStandby measures starting a primary and a standby until it streams.
func BenchmarkStartPrimaryStandby(b *testing.B) {
	ctx := context.Background()
	bins, s := benchSetup(b)
	for i := 0; b.Loop(); i++ {
		p, err := Start(ctx, Config{Name: fmt.Sprintf("primary%d", i), BaseDir: s.Dir, Binaries: bins})
		if err != nil {
			b.Fatal(err)
		}
		sb, err := StartStandby(ctx, p, Config{Name: fmt.Sprintf("standby%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := errors.Join(sb.Remove(ctx), p.Remove(ctx)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
