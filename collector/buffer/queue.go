package buffer

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/internal/fileutil"
)

// RejectedDir is the spool's subfolder for batches the API refused as malformed (or spool files
// that no longer decode): kept for a person to inspect, never retried.
const RejectedDir = "rejected"

const (
	batchSuffix = ".batch"
	tmpSuffix   = ".tmp"
	seqDigits   = 20
)

// Options bound the queue.
type Options struct {
	Dir              string
	MemoryMaxBytes   int64 // batches kept in memory while nothing is on disk
	DiskMaxBytes     int64 // spool size; beyond it the oldest batch is dropped and counted
	RejectedMaxBytes int64 // rejected/ size; beyond it the oldest rejected batch is deleted
	Log              *slog.Logger
}

// Stats describe the queue for the collector's status report.
type Stats struct {
	MemoryBatches int
	MemoryBytes   int64
	DiskBatches   int
	DiskBytes     int64
	Dropped       int64   // batches dropped since start because the spool was full
	Rejected      int64   // batches moved to rejected/ since start
	Utilization   float64 // spool bytes / DiskMaxBytes, 0..1
}

type diskEntry struct {
	seq  uint64
	size int64
}

// Queue is a FIFO of batches: memory holds the newest ones while everything fits and nothing waits
// on disk; as soon as a delivery fails (Spill) or memory is full, batches go to the spool, so what
// an outage accumulates survives a crash. Invariant: every batch on disk is older than every batch
// in memory. Safe for concurrent use.
type Queue struct {
	opts   Options
	lock   *os.File // holds the spool's flock; nil when the queue has no spool (NewMemory, closed)
	ready  chan struct{}
	mu     sync.Mutex
	mem    []Batch
	memB   int64
	disk   []diskEntry
	diskB  int64
	next   uint64
	stats  Stats
	closed bool
}

// Open creates the spool directories if needed, takes the spool for this process (an *InUseError
// if another process holds it) and indexes the batches a previous run left. Close gives it back.
func Open(opts Options) (*Queue, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, RejectedDir), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockSpool(opts.Dir)
	if err != nil {
		return nil, err
	}
	q := &Queue{opts: opts, lock: lock, ready: make(chan struct{}, 1), next: 1}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) {
			// A write a crash interrupted before its rename: never a complete batch.
			_ = os.Remove(filepath.Join(opts.Dir, name))
			continue
		}
		seq, ok := parseName(name)
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		q.disk = append(q.disk, diskEntry{seq: seq, size: info.Size()})
		q.diskB += info.Size()
		q.next = max(q.next, seq+1)
	}
	slices.SortFunc(q.disk, func(a, b diskEntry) int { return compareSeq(a.seq, b.seq) })
	if len(q.disk) > 0 {
		opts.Log.Info("spool holds batches from a previous run", "batches", len(q.disk), "bytes", q.diskB)
		q.signal()
	}
	return q, nil
}

// NewMemory returns a queue without a spool, for a one-off run beside the process that owns the
// spool: batches stay in memory (bounded by MemoryMaxBytes, the newest always kept), Spill and Close
// leave them there, and a rejected batch is dropped. Options.Dir is not used.
func NewMemory(opts Options) *Queue {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Dir = ""
	return &Queue{opts: opts, ready: make(chan struct{}, 1), next: 1}
}

// Spooled reports whether the queue has a disk spool (false for NewMemory and after Close).
func (q *Queue) Spooled() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lock != nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fileName(seq uint64) string { return fmt.Sprintf("%0*d%s", seqDigits, seq, batchSuffix) }

func parseName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, batchSuffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// Ready is signalled whenever a batch is added; a sender waits on it when the queue is empty.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

func (q *Queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Push adds a batch created at created (its collection time).
func (q *Queue) Push(body []byte, created time.Time) error {
	if len(body) > MaxBatchBytes {
		return fmt.Errorf("batch of %d bytes exceeds %d", len(body), MaxBatchBytes)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("queue closed")
	}
	b := Batch{Seq: q.next, CreatedAt: created.UTC(), Body: body}
	q.next++
	if len(q.disk) == 0 && q.memB+int64(len(body)) <= q.opts.MemoryMaxBytes {
		q.mem = append(q.mem, b)
		q.memB += int64(len(body))
		q.signal()
		return nil
	}
	if q.lock != nil {
		err := q.spillLocked()
		if err == nil {
			err = q.writeLocked(b)
		}
		if err == nil {
			q.signal()
			return nil
		}
		// The disk refuses (full, read-only): keep the batch in memory, bounded by dropping the
		// oldest there, rather than lose the newest.
		q.opts.Log.Error("spool write failed; keeping the batch in memory", "err", err)
	}
	q.mem = append(q.mem, b)
	q.memB += int64(len(body))
	for q.memB > q.opts.MemoryMaxBytes && len(q.mem) > 1 {
		q.dropMemLocked()
	}
	q.signal()
	return nil
}

// Spill moves every in-memory batch to the spool: called when a delivery fails, so that an outage
// is on disk from its first failed attempt, and on shutdown.
func (q *Queue) Spill() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spillLocked()
}

func (q *Queue) spillLocked() error {
	if q.lock == nil {
		return nil // no spool: memory is all there is
	}
	for len(q.mem) > 0 {
		if err := q.writeLocked(q.mem[0]); err != nil {
			return err
		}
		q.memB -= int64(len(q.mem[0].Body))
		q.mem = q.mem[1:]
	}
	return nil
}

// writeLocked puts b on disk (temp file, fsync, rename, fsync dir) and enforces DiskMaxBytes by
// dropping the oldest batches. Batches go to disk in sequence order, so appending keeps q.disk
// sorted.
func (q *Queue) writeLocked(b Batch) error {
	data := Encode(b)
	if err := writeFileAtomic(q.opts.Dir, fileName(b.Seq), data); err != nil {
		return err
	}
	q.disk = append(q.disk, diskEntry{seq: b.Seq, size: int64(len(data))})
	q.diskB += int64(len(data))
	for q.diskB > q.opts.DiskMaxBytes && len(q.disk) > 1 {
		old := q.disk[0]
		if err := os.Remove(q.path(old.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			q.opts.Log.Error("drop oldest spooled batch", "err", err)
		}
		q.popDiskLocked()
		q.stats.Dropped++
		q.opts.Log.Warn("spool full: dropped the oldest batch", "seq", old.seq, "dropped_total", q.stats.Dropped)
	}
	return nil
}

func (q *Queue) dropMemLocked() {
	q.memB -= int64(len(q.mem[0].Body))
	q.mem = q.mem[1:]
	q.stats.Dropped++
	q.opts.Log.Warn("memory queue full and spool unwritable: dropped the oldest batch", "dropped_total", q.stats.Dropped)
}

func (q *Queue) popDiskLocked() {
	q.diskB -= q.disk[0].size
	q.disk = q.disk[1:]
}

func (q *Queue) path(seq uint64) string { return filepath.Join(q.opts.Dir, fileName(seq)) }

// Peek returns the oldest batch without removing it; ok is false when the queue is empty. A spool
// file that does not decode is moved to rejected/ and skipped.
func (q *Queue) Peek() (Batch, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.disk) > 0 {
		seq := q.disk[0].seq
		data, err := os.ReadFile(q.path(seq))
		if err == nil {
			var b Batch
			if b, err = Decode(data); err == nil && b.Seq == seq {
				return b, true
			} else if err == nil {
				err = fmt.Errorf("%w: file %s holds sequence %d", ErrCorrupt, fileName(seq), b.Seq)
			}
		}
		q.opts.Log.Error("unreadable spool file moved to rejected/", "file", fileName(seq), "err", err)
		q.rejectDiskLocked(seq, err.Error())
	}
	if len(q.mem) > 0 {
		return q.mem[0], true
	}
	return Batch{}, false
}

// Ack removes batch seq (delivered). Only the oldest batch can be acknowledged.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case len(q.disk) > 0 && q.disk[0].seq == seq:
		if err := os.Remove(q.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: remove delivered batch: %w", err)
		}
		q.popDiskLocked()
	case len(q.disk) == 0 && len(q.mem) > 0 && q.mem[0].Seq == seq:
		q.memB -= int64(len(q.mem[0].Body))
		q.mem = q.mem[1:]
	default:
		return fmt.Errorf("ack %d: not the oldest batch", seq)
	}
	return nil
}

// Reject moves batch seq (the oldest) to rejected/ with reason next to it.
func (q *Queue) Reject(seq uint64, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case len(q.disk) > 0 && q.disk[0].seq == seq:
		q.rejectDiskLocked(seq, reason)
	case len(q.disk) == 0 && len(q.mem) > 0 && q.mem[0].Seq == seq:
		b := q.mem[0]
		q.memB -= int64(len(b.Body))
		q.mem = q.mem[1:]
		if q.lock == nil {
			q.stats.Rejected++ // no rejected/ to keep it in: the sender's log is its record
			return nil
		}
		if err := writeFileAtomic(q.rejectedDir(), fileName(seq), Encode(b)); err != nil {
			q.opts.Log.Error("write rejected batch", "seq", seq, "err", err)
		}
		q.noteRejectLocked(seq, reason)
	default:
		return fmt.Errorf("reject %d: not the oldest batch", seq)
	}
	return nil
}

func (q *Queue) rejectedDir() string { return filepath.Join(q.opts.Dir, RejectedDir) }

func (q *Queue) rejectDiskLocked(seq uint64, reason string) {
	if err := os.Rename(q.path(seq), filepath.Join(q.rejectedDir(), fileName(seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		q.opts.Log.Error("move batch to rejected/", "seq", seq, "err", err)
		_ = os.Remove(q.path(seq))
	}
	q.popDiskLocked()
	q.noteRejectLocked(seq, reason)
}

// noteRejectLocked writes the reason beside the rejected batch and keeps rejected/ under its bound
// by deleting the oldest entries (logged: nothing leaves silently).
func (q *Queue) noteRejectLocked(seq uint64, reason string) {
	q.stats.Rejected++
	if err := writeFileAtomic(q.rejectedDir(), fileName(seq)+".reason", []byte(reason+"\n")); err != nil {
		q.opts.Log.Error("write rejection reason", "seq", seq, "err", err)
	}
	entries, err := os.ReadDir(q.rejectedDir())
	if err != nil {
		return
	}
	var total int64
	type file struct {
		name string
		size int64
	}
	var files []file
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			files = append(files, file{e.Name(), info.Size()})
			total += info.Size()
		}
	}
	// Names start with the zero-padded sequence: lexical order is age order.
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	for len(files) > 2 && total > q.opts.RejectedMaxBytes {
		q.opts.Log.Warn("rejected/ over its bound: deleting the oldest", "file", files[0].name)
		_ = os.Remove(filepath.Join(q.rejectedDir(), files[0].name))
		total -= files[0].size
		files = files[1:]
	}
}

// Stats reports the queue's size and counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.MemoryBatches, s.MemoryBytes = len(q.mem), q.memB
	s.DiskBatches, s.DiskBytes = len(q.disk), q.diskB
	if q.opts.DiskMaxBytes > 0 {
		s.Utilization = min(1, float64(q.diskB)/float64(q.opts.DiskMaxBytes))
	}
	return s
}

// Len is the number of batches waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.mem) + len(q.disk)
}

// Close spills what memory holds to disk and gives the spool up; later Pushes fail.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	err := q.spillLocked()
	if q.lock != nil {
		// Closing the file releases the flock.
		err = errors.Join(err, q.lock.Close())
		q.lock = nil
	}
	return err
}

// writeFileAtomic writes dir/name whole or not at all (a temporary ending in tmpSuffix, which
// Open sweeps, then fsync, rename, fsync of the directory).
func writeFileAtomic(dir, name string, data []byte) error {
	if err := fileutil.WriteAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
