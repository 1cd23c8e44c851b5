package buffer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holdSpoolEnv makes the test binary a second process that holds the spool named by its value
// until its stdin closes or it is killed.
const holdSpoolEnv = "PGANALYTICS_TEST_HOLD_SPOOL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdSpoolEnv); dir != "" {
		os.Exit(holdSpool(dir))
	}
	os.Exit(m.Run())
}

func holdSpool(dir string) int {
	q, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = q.Close()
	return 0
}

// die is what the kernel does to a queue when its process is killed: the lock goes, nothing is
// spilled.
func die(q *Queue) { q.lock.Close() }

func lockedPID(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSpoolLock(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	t.Run("a second Open of the same spool is refused, naming the holder", func(t *testing.T) {
		dir := t.TempDir()
		q := open(t, dir, 1<<20, 1<<20)
		defer q.Close()
		_, err := Open(Options{Dir: dir})
		inUse, ok := errors.AsType[*InUseError](err)
		if !ok || inUse.PID != os.Getpid() || !strings.Contains(err.Error(), "in use by pid "+self) {
			t.Fatalf("second Open: %v, want an *InUseError naming pid %s", err, self)
		}
	})
	t.Run("Close gives the spool back", func(t *testing.T) {
		dir := t.TempDir()
		q := open(t, dir, 0, 1<<20)
		q.Push(body(1), time.Unix(1, 0))
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q2 := open(t, dir, 0, 1<<20)
		defer q2.Close()
		if got := drain(t, q2); !equal(got, want(1, 1)) {
			t.Errorf("reopened spool holds %v", got)
		}
	})
	t.Run("a lock file left by a dead process blocks nothing", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, lockName), []byte("999999999\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		q := open(t, dir, 1<<20, 1<<20)
		defer q.Close()
		if got := lockedPID(t, dir); got != self {
			t.Errorf("lock file holds %q, want our pid %s", got, self)
		}
	})
}

// TestSpoolLockDiesWithItsProcess holds the spool from another process, checks that it is refused
// here with that process's pid, kills it with SIGKILL and opens the spool.
func TestSpoolLockDiesWithItsProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdSpoolEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	_, err = Open(Options{Dir: dir})
	if inUse, ok := errors.AsType[*InUseError](err); !ok || inUse.PID != cmd.Process.Pid {
		t.Fatalf("Open beside pid %d: %v", cmd.Process.Pid, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	q := open(t, dir, 1<<20, 1<<20)
	defer q.Close()
	if got := lockedPID(t, dir); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q after the holder was killed", got)
	}
}

// TestMemoryQueue: a queue without a spool writes nothing anywhere and keeps the newest batch.
func TestMemoryQueue(t *testing.T) {
	dir := t.TempDir()
	q := NewMemory(Options{Dir: dir, MemoryMaxBytes: 300})
	if q.Spooled() {
		t.Fatal("a memory queue reports a spool")
	}
	for i := 1; i <= 5; i++ {
		if err := q.Push(body(i), time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Spill(); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.DiskBatches != 0 || s.MemoryBatches != 2 || s.Dropped != 3 {
		t.Errorf("stats = %+v: want the 2 newest in memory, 3 dropped", s)
	}
	b, _ := q.Peek()
	if err := q.Reject(b.Seq, "api: 400"); err != nil || q.Stats().Rejected != 1 {
		t.Errorf("reject: %v, stats %+v", err, q.Stats())
	}
	if got := drain(t, q); !equal(got, want(5, 5)) {
		t.Errorf("left %v, want the newest batch", got)
	}
	q.Push(body(6), time.Unix(6, 0))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("memory queue wrote into %s: %v", dir, entries)
	}
}
