package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const scratchPrefix = "pgcluster-"

// reaperScript waits for EOF on stdin, which comes when the process holding
// the pipe's other end exits however it exits (even SIGKILL). Child servers
// get SIGQUIT from the kernel then; persistent ones it signals itself (when
// the pid in postmaster.pid really is the server of that data directory).
// Once the servers are gone it removes the scratch directory, $1.
const reaperScript = `cat >/dev/null
for d in "$1"/*/data; do
  pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null) && [ "$(readlink "/proc/$pid/cwd")" = "$d" ] && kill -QUIT "$pid"
done
i=0
while [ $i -lt 100 ] && ls "$1"/*/data/postmaster.pid >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
rm -rf "$1"`

// Scratch is a temporary base directory for non-persistent clusters. It is
// removed by Close or, should this process die first, by a small reaper
// process. Keep the Scratch referenced until Close: dropping it closes the
// pipe the reaper watches.
type Scratch struct {
	Dir    string
	pipe   *os.File
	reaper *exec.Cmd
}

// NewScratch creates a scratch directory under the system's temp dir, owned
// by the server user. It first deletes the scratch directories of processes
// that are gone, should their reapers have been killed too.
func NewScratch() (*Scratch, error) {
	sweepScratch()
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", scratchPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	if err := chown(dir, cred); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create scratch dir: %w", err), os.RemoveAll(dir))
	}
	defer r.Close()
	reaper := exec.Command("/bin/sh", "-c", reaperScript, "sh", dir)
	reaper.Stdin = r
	// Its own process group, so that a terminal's Ctrl-C kills only us, not it.
	reaper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := reaper.Start(); err != nil {
		w.Close()
		return nil, errors.Join(fmt.Errorf("start scratch reaper: %w", err), os.RemoveAll(dir))
	}
	return &Scratch{Dir: dir, pipe: w, reaper: reaper}, nil
}

// Close stops any server still running in the scratch directory, removes it,
// and ends the reaper.
func (s *Scratch) Close() error {
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		killServer(filepath.Join(s.Dir, e.Name()))
	}
	err := os.RemoveAll(s.Dir)
	err = errors.Join(err, s.pipe.Close())
	_ = s.reaper.Wait() // it exits at once: the pipe is closed and the directory gone
	if err != nil {
		return fmt.Errorf("remove scratch dir: %w", err)
	}
	return nil
}

// sweepScratch removes scratch directories whose creating process is gone.
func sweepScratch() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), scratchPrefix+"*-*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), scratchPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		clusters, _ := os.ReadDir(dir)
		for _, e := range clusters {
			killServer(filepath.Join(dir, e.Name()))
		}
		_ = os.RemoveAll(dir)
	}
}

// killServer stops, in immediate mode, a server left running in clusterDir.
func killServer(clusterDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &Cluster{DataDir: filepath.Join(clusterDir, "data")}
	_ = c.shutdown(ctx, syscall.SIGQUIT) // best effort: the directory goes anyway
}
