// Package buffer keeps push batches until the API has them: a bounded in-memory queue in front of
// an on-disk spool that survives restarts and kill -9 (every file is written to a temporary name,
// fsynced and renamed). Batches leave oldest first.
package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// MaxBatchBytes bounds one batch body: the API refuses pushes over 8 MiB on the wire, so anything
// larger in a spool file is corruption, not data.
const MaxBatchBytes = 16 << 20

// Batch is one push body (gzip JSON of an api.PushRequest) with its place in the queue.
type Batch struct {
	Seq       uint64
	CreatedAt time.Time
	Body      []byte
}

// Spool file layout, big-endian:
//
//	magic "PGABATCH" | version u8 | created unix-nanos i64 | seq u64 | body length u32 | CRC-32C u32 | body
const (
	magic         = "PGABATCH"
	formatVersion = 1
	headerLen     = len(magic) + 1 + 8 + 8 + 4 + 4
)

func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// Encode serialises b for a spool file.
func Encode(b Batch) []byte {
	out := make([]byte, headerLen, headerLen+len(b.Body))
	copy(out, magic)
	i := len(magic)
	out[i] = formatVersion
	i++
	binary.BigEndian.PutUint64(out[i:], uint64(b.CreatedAt.UnixNano()))
	i += 8
	binary.BigEndian.PutUint64(out[i:], b.Seq)
	i += 8
	binary.BigEndian.PutUint32(out[i:], uint32(len(b.Body)))
	i += 4
	binary.BigEndian.PutUint32(out[i:], crc32.Checksum(b.Body, crcTable()))
	return append(out, b.Body...)
}

// ErrCorrupt marks a spool file that is not a whole, intact batch.
var ErrCorrupt = errors.New("corrupt spool file")

// Decode parses a spool file, checking its length and checksum.
func Decode(data []byte) (Batch, error) {
	if len(data) < headerLen {
		return Batch{}, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCorrupt, len(data))
	}
	if string(data[:len(magic)]) != magic {
		return Batch{}, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	i := len(magic)
	if v := data[i]; v != formatVersion {
		return Batch{}, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, v)
	}
	i++
	created := int64(binary.BigEndian.Uint64(data[i:]))
	i += 8
	seq := binary.BigEndian.Uint64(data[i:])
	i += 8
	n := binary.BigEndian.Uint32(data[i:])
	i += 4
	sum := binary.BigEndian.Uint32(data[i:])
	i += 4
	if n > MaxBatchBytes {
		return Batch{}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrCorrupt, n, MaxBatchBytes)
	}
	if int64(len(data)-i) != int64(n) {
		return Batch{}, fmt.Errorf("%w: body is %d bytes, header says %d", ErrCorrupt, len(data)-i, n)
	}
	body := data[i:]
	if crc32.Checksum(body, crcTable()) != sum {
		return Batch{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return Batch{Seq: seq, CreatedAt: time.Unix(0, created).UTC(), Body: body}, nil
}
