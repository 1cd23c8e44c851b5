package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the file in the spool directory whose flock marks the spool's owner. Two processes
// numbering files in one directory would rename their batches over each other's.
const lockName = ".lock"

// InUseError is returned by Open when another process holds the spool.
type InUseError struct {
	Dir string
	PID int // the holder as it wrote itself into the lock file; 0 if unknown
}

func (e *InUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("spool %s is in use by %s: another collector with this spool_dir is running", e.Dir, holder)
}

// lockSpool takes an exclusive, non-blocking flock on dir/.lock and writes our pid into it. The
// kernel drops the lock when the file is closed or the process dies, even by kill -9, so a lock
// file left behind by a dead process blocks nothing.
func lockSpool(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("spool: lock %s: %w", f.Name(), err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
