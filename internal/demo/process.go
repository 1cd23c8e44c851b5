package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// restartDelay is how long a kept-up process stays down before it is started again.
const restartDelay = 300 * time.Millisecond

// process is a supervised program and the command line to start it again. A kept-up process (the
// API servers) is started again whenever it exits, as systemd's Restart=always would, so that an
// upgrade is "replace the binary, SIGTERM the server"; Kill holds it down until Restart.
type process struct {
	name    string
	env     []string
	logFile string
	pidFile string // written at each start when set
	// healthURL answers 200 once the process serves (API servers, haproxy); Restart waits for it.
	healthURL string
	bin       string
	args      []string
	keepUp    bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed once cmd has exited; err is set then
	err     error
	held    bool // Kill took it down: no restart until Restart
	retired bool // the stack is stopping: no restart at all
}

func (st *Stack) spawn(name string, env []string, logFile string, bin string, args ...string) (*process, error) {
	return st.spawnProcess(&process{name: name, env: env, logFile: logFile, bin: bin, args: args})
}

func (st *Stack) spawnProcess(p *process) (*process, error) {
	p.mu.Lock()
	err := p.startLocked()
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, p)
	return p, nil
}

// startLocked runs the process's command line, its output appended to its log file.
func (p *process) startLocked() error {
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Children die with the demo even if it is killed, and stay out of the terminal's Ctrl-C.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	if p.pidFile != "" {
		if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			log.Close()
			return fmt.Errorf("write %s: %w", p.pidFile, err)
		}
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.err = err
		close(done)
		again := p.keepUp && !p.held && !p.retired
		p.mu.Unlock()
		if again {
			p.restartSoon(done)
		}
	}()
	return nil
}

// restartSoon starts a kept-up process again after it exited (its run ended with done), trying
// until it starts or is held or retired; a binary being replaced may be missing for a moment.
func (p *process) restartSoon(done chan struct{}) {
	for {
		time.Sleep(restartDelay)
		p.mu.Lock()
		if p.held || p.retired || p.done != done {
			p.mu.Unlock()
			return
		}
		err := p.startLocked()
		p.mu.Unlock()
		if err == nil {
			return
		}
	}
}

// exitedCh is closed when the current run of the process exits.
func (p *process) exitedCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *process) lastErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// signal sends sig to the current run; hold keeps a kept-up process down after it exits.
func (p *process) signal(sig syscall.Signal, hold bool) (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return nil, fmt.Errorf("%s is not running", p.name)
	default:
	}
	if hold {
		p.held = true
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signal %s: %w", p.name, err)
	}
	return p.done, nil
}

// restart starts a process that exited (after Kill, or by itself) again.
func (p *process) restart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		return fmt.Errorf("%s is still running", p.name)
	}
	p.held = false
	return p.startLocked()
}

func (p *process) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
}

// terminate sends SIGTERM and waits up to grace, then kills.
func (p *process) terminate(grace time.Duration) error {
	done, err := p.signal(syscall.SIGTERM, true)
	if err != nil {
		return nil // not running
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	p.mu.Lock()
	_ = p.cmd.Process.Kill()
	p.mu.Unlock()
	<-done
	return fmt.Errorf("%s did not stop within %s; killed", p.name, grace)
}

func (st *Stack) process(name string) (*process, error) {
	for _, p := range st.procs {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no process %q in the demo stack", name)
}

// PID is the process id of the named process (ProcessAPI, ProcessCollector), 0 when it has exited.
func (st *Stack) PID(name string) int {
	p, err := st.process(name)
	if err != nil {
		return 0
	}
	return p.pid()
}

// Kill sends sig to the named process and waits until it has exited: a way to take the API or the
// collector away mid-run (outage and crash tests). It stays down until Restart, API servers too.
func (st *Stack) Kill(ctx context.Context, name string, sig syscall.Signal) error {
	p, err := st.process(name)
	if err != nil {
		return err
	}
	done, err := p.signal(sig, true)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to exit after %v: %w", name, sig, ctx.Err())
	}
}

// Restart starts the named process again, after Kill or after it exited by itself, with its
// original command line and log file; an API server is waited for until it is healthy.
func (st *Stack) Restart(ctx context.Context, name string) error {
	p, err := st.process(name)
	if err != nil {
		return err
	}
	if err := p.restart(); err != nil {
		return err
	}
	if p.healthURL != "" {
		return st.waitHealthy(ctx, p)
	}
	return nil
}
