package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/pgtest"
)

// footprintCycles is how many cycles each measurement spans, at a 1 s interval; CPU per cycle is
// what a 10 s interval costs every 10 s.
const footprintCycles = 30

// BenchmarkFootprint builds the real binary and runs it against a local primary and standby (N
// instances, alternating between the two) and a fake API, reading its CPU time and RSS from /proc.
//
//	go test -run '^$' -bench Footprint -benchtime 1x ./cmd/pganalytics/
func BenchmarkFootprint(b *testing.B) {
	p, s := pgtest.StartPrimaryStandby(b)
	bin := filepath.Join(b.TempDir(), "pganalytics")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			for b.Loop() {
				footprint(b, bin, n, p.DSN("postgres"), s.DSN("postgres"))
			}
		})
	}
}

func footprint(b *testing.B, bin string, n int, dsns ...string) {
	var pushes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		pushes.Add(1)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":1}`)
	}))
	defer srv.Close()
	dir := b.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("tok\n"), 0o600)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[collector]\nname = \"bench\"\ninterval = \"1s\"\nlog_level = \"warn\"\n[api]\nurl = %q\ntoken_file = %q\n[buffer]\nspool_dir = %q\n",
		srv.URL, token, filepath.Join(dir, "spool"))
	for i := range n {
		fmt.Fprintf(&cfg, "[[postgres]]\nname = \"db%d\"\ndsn = %q\ntimeout = \"500ms\"\n", i, dsns[i%len(dsns)])
	}
	cfgPath := filepath.Join(dir, "collector.toml")
	os.WriteFile(cfgPath, []byte(cfg.String()), 0o600)

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitPushes := func(want int64) {
		deadline := time.Now().Add(time.Duration(want+30) * time.Second)
		for pushes.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("only %d pushes; stderr:\n%s", pushes.Load(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitPushes(2) // connected, statements prepared
	cpu0, start := cpuTicks(b, cmd.Process.Pid), pushes.Load()
	waitPushes(start + footprintCycles)
	cpu1, end := cpuTicks(b, cmd.Process.Pid), pushes.Load()
	rss, hwm := memKB(b, cmd.Process.Pid, "VmRSS:"), memKB(b, cmd.Process.Pid, "VmHWM:")
	stopAt := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	cpuPerCycle := float64(cpu1-cpu0) * 10 / float64(end-start) // ms: a tick is 10 ms (CLK_TCK 100)
	b.ReportMetric(cpuPerCycle, "cpu-ms/cycle")
	b.ReportMetric(cpuPerCycle/10_000*100, "cpu-%@10s")
	b.ReportMetric(float64(rss)/1024, "rss-MB")
	b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
	b.ReportMetric(float64(time.Since(stopAt).Milliseconds()), "sigterm-exit-ms")
}

func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

func memKB(b *testing.B, pid int, key string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
