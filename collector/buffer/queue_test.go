package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func open(t testing.TB, dir string, mem, disk int64) *Queue {
	t.Helper()
	q, err := Open(Options{Dir: dir, MemoryMaxBytes: mem, DiskMaxBytes: disk, RejectedMaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func body(i int) []byte {
	return []byte(fmt.Sprintf("batch-%04d-%s", i, bytes.Repeat([]byte{'x'}, 100)))
}

// drain acknowledges every batch, oldest first, and returns their bodies.
func drain(t *testing.T, q *Queue) []string {
	t.Helper()
	var got []string
	for {
		b, ok := q.Peek()
		if !ok {
			return got
		}
		got = append(got, string(b.Body[:10]))
		if err := q.Ack(b.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func want(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, string(body(i)[:10]))
	}
	return out
}

func TestQueueOrderAcrossMemoryAndDisk(t *testing.T) {
	tests := []struct {
		name      string
		mem       int64
		spillAt   int // Spill after pushing this many (0: never)
		wantDisk  bool
		wantOrder []string
	}{
		{"all in memory", 1 << 20, 0, false, want(1, 10)},
		{"memory overflows to disk", 500, 0, true, want(1, 10)},
		{"spill after a failed delivery", 1 << 20, 4, true, want(1, 10)},
		{"no memory at all", 0, 0, true, want(1, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := open(t, t.TempDir(), tt.mem, 1<<20)
			for i := 1; i <= 10; i++ {
				if err := q.Push(body(i), time.Unix(int64(i), 0)); err != nil {
					t.Fatal(err)
				}
				if i == tt.spillAt {
					if err := q.Spill(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if s := q.Stats(); (s.DiskBatches > 0) != tt.wantDisk || s.MemoryBatches+s.DiskBatches != 10 {
				t.Errorf("stats = %+v, want disk used %v", s, tt.wantDisk)
			}
			if got := drain(t, q); !equal(got, tt.wantOrder) {
				t.Errorf("order = %v, want %v", got, tt.wantOrder)
			}
			if q.Len() != 0 {
				t.Errorf("len = %d after drain", q.Len())
			}
		})
	}
}

// TestQueueSurvivesRestart is the kill -9 case: once a delivery failed (Spill), every batch is on
// disk; a new Queue over the same directory delivers them all, oldest first, with their original
// creation times, and a torn temporary file is ignored.
func TestQueueSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 1<<20, 1<<20)
	for i := 1; i <= 3; i++ {
		q.Push(body(i), time.Unix(int64(1000+i), 0))
	}
	if err := q.Spill(); err != nil {
		t.Fatal(err)
	}
	for i := 4; i <= 6; i++ {
		q.Push(body(i), time.Unix(int64(1000+i), 0))
	}
	// The process dies here: no Close, the kernel drops its lock. A write it was in the middle of
	// left a temporary file.
	die(q)
	if err := os.WriteFile(filepath.Join(dir, fileName(7)+".123"+tmpSuffix), []byte("PGABA"), 0o600); err != nil {
		t.Fatal(err)
	}

	q2 := open(t, dir, 1<<20, 1<<20)
	if q2.Len() != 6 {
		t.Fatalf("restarted queue holds %d batches, want 6", q2.Len())
	}
	b, _ := q2.Peek()
	if !b.CreatedAt.Equal(time.Unix(1001, 0)) {
		t.Errorf("first batch created %v, want its original time", b.CreatedAt)
	}
	q2.Push(body(7), time.Unix(1007, 0))
	if got := drain(t, q2); !equal(got, want(1, 7)) {
		t.Errorf("order after restart = %v", got)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix)); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestQueueFullDropsOldest(t *testing.T) {
	q := open(t, t.TempDir(), 0, 64<<10)
	for i := 1; i <= 1000; i++ {
		if err := q.Push(body(i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s := q.Stats()
	if s.DiskBytes > 64<<10 || s.Dropped == 0 || int64(s.DiskBatches)+s.Dropped != 1000 {
		t.Fatalf("stats = %+v: want bytes within bound and kept+dropped = 1000", s)
	}
	if s.Utilization <= 0.9 || s.Utilization > 1 {
		t.Errorf("utilization = %v on a full spool", s.Utilization)
	}
	got := drain(t, q)
	if got[len(got)-1] != string(body(1000)[:10]) || got[0] != string(body(int(s.Dropped) + 1)[:10]) {
		t.Errorf("kept %s..%s, want the newest %d", got[0], got[len(got)-1], len(got))
	}
}

func TestQueueRejectAndCorruption(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 1<<20, 1<<20)
	q.Push(body(1), time.Now())
	b, _ := q.Peek()
	if err := q.Reject(b.Seq, "api: 400 bad_request"); err != nil {
		t.Fatal(err)
	}
	rejected := filepath.Join(dir, RejectedDir, fileName(b.Seq))
	data, err := os.ReadFile(rejected)
	if err != nil {
		t.Fatalf("rejected batch not kept: %v", err)
	}
	if kept, err := Decode(data); err != nil || !bytes.Equal(kept.Body, body(1)) {
		t.Errorf("rejected file = %v, %v", kept, err)
	}
	if reason, _ := os.ReadFile(rejected + ".reason"); !bytes.Contains(reason, []byte("400")) {
		t.Errorf("reason = %q", reason)
	}

	q.Push(body(2), time.Now())
	q.Push(body(3), time.Now())
	q.Spill()
	// Corrupt the older spooled batch on disk: it is moved aside, the next one still goes out.
	b, _ = q.Peek()
	path := filepath.Join(dir, fileName(b.Seq))
	os.WriteFile(path, []byte("garbage"), 0o600)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := open(t, dir, 1<<20, 1<<20)
	if got := drain(t, q2); !equal(got, want(3, 3)) {
		t.Errorf("after corruption got %v, want batch 3 only", got)
	}
	if _, err := os.Stat(filepath.Join(dir, RejectedDir, fileName(b.Seq))); err != nil {
		t.Errorf("corrupt file not moved to rejected/: %v", err)
	}
	if q2.Stats().Rejected != 1 {
		t.Errorf("rejected count = %d", q2.Stats().Rejected)
	}
}

func TestQueueAckOutOfOrder(t *testing.T) {
	q := open(t, t.TempDir(), 1<<20, 1<<20)
	q.Push(body(1), time.Now())
	q.Push(body(2), time.Now())
	if err := q.Ack(2); err == nil {
		t.Error("acknowledged a batch that is not the oldest")
	}
	if err := q.Push(make([]byte, MaxBatchBytes+1), time.Now()); err == nil {
		t.Error("accepted an oversized batch")
	}
	q.Close()
	if err := q.Push(body(3), time.Now()); err == nil {
		t.Error("push after close succeeded")
	}
	if s := q.Stats(); s.DiskBatches != 2 || s.MemoryBatches != 0 {
		t.Errorf("close did not spill: %+v", s)
	}
}

func TestQueueUnwritableSpoolKeepsMemory(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; make the spool path a file instead.
		dir := t.TempDir()
		q := open(t, dir, 400, 1<<20)
		q.opts.Dir = filepath.Join(dir, "not-a-dir")
		os.WriteFile(q.opts.Dir, nil, 0o600)
		for i := 1; i <= 10; i++ {
			q.Push(body(i), time.Now())
		}
		s := q.Stats()
		if s.MemoryBytes > 400 || s.Dropped == 0 || s.MemoryBatches == 0 {
			t.Errorf("stats = %+v: want memory bounded, oldest dropped", s)
		}
		if got := drain(t, q); got[len(got)-1] != string(body(10)[:10]) {
			t.Errorf("newest batch lost: %v", got)
		}
		return
	}
	t.Skip("needs root to simulate an unwritable spool portably")
}

func TestDecodeRejectsDamage(t *testing.T) {
	good := Encode(Batch{Seq: 9, CreatedAt: time.Unix(5, 0), Body: []byte("hello")})
	if b, err := Decode(good); err != nil || b.Seq != 9 || string(b.Body) != "hello" || !b.CreatedAt.Equal(time.Unix(5, 0)) {
		t.Fatalf("round trip = %+v, %v", b, err)
	}
	flip := bytes.Clone(good)
	flip[len(flip)-1] ^= 1
	long := bytes.Clone(good)
	long = append(long, 'x')
	cases := map[string][]byte{
		"empty":      nil,
		"short":      good[:10],
		"truncated":  good[:len(good)-1],
		"trailing":   long,
		"bit flip":   flip,
		"bad magic":  append([]byte("XXXXXXXX"), good[8:]...),
		"bad format": append(append([]byte(magic), 7), good[9:]...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(Batch{Seq: 1, CreatedAt: time.Unix(1, 0), Body: []byte(`{"metrics":[]}`)}))
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if again := Encode(b); !bytes.Equal(again, data) {
			t.Fatalf("decoded batch does not re-encode to the same bytes")
		}
	})
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

func BenchmarkSpoolWrite(b *testing.B) {
	q := open(b, b.TempDir(), 0, 1<<40)
	payload := bytes.Repeat([]byte("x"), 4096)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := q.Push(payload, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSpoolReplay(b *testing.B) {
	dir := b.TempDir()
	q := open(b, dir, 0, 1<<40)
	payload := bytes.Repeat([]byte("x"), 4096)
	for range b.N {
		q.Push(payload, time.Now())
	}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		bt, ok := q.Peek()
		if !ok {
			b.Fatal("empty")
		}
		if err := q.Ack(bt.Seq); err != nil {
			b.Fatal(err)
		}
	}
}
