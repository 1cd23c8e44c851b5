package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// standbyName is the application_name of internal/demo's standby.
const standbyName = "db1_standby"

// standbyRow matches the standby's line in the console's Replication view at 160 columns:
//
//	OK    db1_standby        streaming    async   0 B   0 B   0.0s   0 B   0.0s ░░░░░░░░░░   0 B   0.0s   0.5s ▁▁▁▁
//
// and captures the replay lag in bytes, the figure right after the lag bar.
var standbyRow = regexp.MustCompile(`(?m)^\S*\s+[A-Z]+\s+` + standbyName + `\s+streaming\s.*[░▏▎▍▌▋▊▉█]\s+(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)\s`)

// TestConsoleShowsStandbyLag runs the real console in tmux against a stack, waits for the standby
// and its replay lag to appear, pauses replay on the standby and generates WAL on the primary, and
// asserts that the lag on screen grows, then falls again once replay resumes; then quits with q.
func TestConsoleShowsStandbyLag(t *testing.T) {
	tmuxBin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (make deps installs it): the console test needs a terminal multiplexer")
	}
	t.Parallel()
	// No workload: the lag stays 0 until the test writes, so any change on screen is the test's.
	s := startStack(t, 2*time.Second, false)
	tm := startTmux(t, tmuxBin, s.consoleEnv(t), bin("pgactl"))

	before := tm.waitLag(t, "the standby "+standbyName+" with its replay lag", func(bytes float64) bool { return true })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby := connect(t, ctx, s.env.Vars["STANDBY_URL"], "")
	primary := connect(t, ctx, s.env.Vars["PRIMARY_URL"], "demo")
	if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatalf("pause replay on the standby: %v", err)
	}
	if _, err := primary.Exec(ctx, "INSERT INTO orders (payload) SELECT md5(g::text) FROM generate_series(1, 200000) g"); err != nil {
		t.Fatalf("generate WAL on the primary: %v", err)
	}
	// 200,000 rows are tens of MiB of WAL; at least 1 MiB of it must show as replay lag.
	paused := tm.waitLag(t, "the replay lag to grow past 1 MiB while replay is paused", func(bytes float64) bool {
		return bytes > before.bytes && bytes >= 1<<20
	})
	if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatalf("resume replay on the standby: %v", err)
	}
	resumed := tm.waitLag(t, "the replay lag to fall back below 1 MiB once replay resumes", func(bytes float64) bool {
		return bytes < 1<<20
	})
	t.Logf("replay lag on screen: %s before, %s while paused, %s after resuming", before.text, paused.text, resumed.text)

	tm.sendKeys(t, "q")
	if code := tm.waitExit(t, 30*time.Second); code != "0" {
		t.Errorf("the console exited with status %s after q, want 0", code)
	}
}

// lag is the replay lag figure the console shows for the standby.
type lag struct {
	text  string // as on screen, e.g. "33 MiB"
	bytes float64
}

func parseLag(screen string) (lag, bool) {
	m := standbyRow.FindStringSubmatch(screen)
	if m == nil {
		return lag{}, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return lag{}, false
	}
	unit := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	return lag{text: m[1] + " " + m[2], bytes: v * unit}, true
}

// tmux is one detached tmux session on a private server, running one program in a 160×48 pane.
type tmux struct {
	bin, socket string
	env         []string
	exitFile    string // the program's exit status, written by the pane's shell
	lastScreen  string
}

const tmuxSession = "console"

// startTmux starts program in a detached session whose pane stays after the program exits (so its
// last screen can be read). The server is killed when the test ends; a failed
// test gets the last screen.
func startTmux(t *testing.T, tmuxBin string, env []string, program string) *tmux {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := &tmux{bin: tmuxBin, socket: filepath.Join(dir, "tmux.sock"), env: env, exitFile: filepath.Join(dir, "exit-status")}
	// The pane's shell records the program's exit status: tmux may report a pane dead before it has
	// reaped the program (tmux/tmux#4841), a file written after the program ends cannot.
	script := shellQuote(program) + "; echo $? > " + shellQuote(tm.exitFile)
	if out, err := tm.command("-f", conf, "new-session", "-d", "-s", tmuxSession, "-x", "160", "-y", "48", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if screen, err := tm.capture(); err == nil {
				tm.lastScreen = screen
			}
			t.Logf("last console screen:\n%s", tm.lastScreen)
		}
		_ = tm.command("kill-server").Run()
	})
	return tm
}

func (tm *tmux) command(args ...string) *exec.Cmd {
	cmd := exec.Command(tm.bin, append([]string{"-S", tm.socket}, args...)...)
	cmd.Env = tm.env
	return cmd
}

func (tm *tmux) capture() (string, error) {
	out, err := tm.command("capture-pane", "-p", "-t", tmuxSession).Output()
	if err != nil {
		return "", fmt.Errorf("tmux capture-pane: %w", err)
	}
	return string(out), nil
}

func (tm *tmux) sendKeys(t *testing.T, keys ...string) {
	t.Helper()
	if out, err := tm.command(append([]string{"send-keys", "-t", tmuxSession}, keys...)...).CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

// waitExit waits until the program has exited and returns its exit status as the shell reports it
// (128+N for a signal). Should it still run at the deadline, the test fails with its process state.
func (tm *tmux) waitExit(t *testing.T, timeout time.Duration) string {
	t.Helper()
	var code string
	waitFor(t, timeout, "the console to exit", func(context.Context) (bool, string) {
		raw, err := os.ReadFile(tm.exitFile)
		if err != nil {
			return false, "still running: " + tm.programState()
		}
		code = strings.TrimSpace(string(raw))
		return code != "", "exit status file empty"
	})
	return code
}

// programState describes the processes running in the pane (the shell and the program), for a
// failure message.
func (tm *tmux) programState() string {
	out, err := tm.command("display-message", "-p", "-t", tmuxSession, "#{pane_pid}").Output()
	if err != nil {
		return fmt.Sprintf("tmux display-message: %v", err)
	}
	shell, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return fmt.Sprintf("pane pid %q: %v", out, err)
	}
	procs, err := descendants(shell)
	if err != nil {
		return err.Error()
	}
	var states []string
	for _, p := range procs {
		_, state, _, _, err := readStat(p.pid)
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", p.pid))
		states = append(states, fmt.Sprintf("%s[%d] state %s wchan %s (err %v)", p.comm, p.pid, state, wchan, err))
	}
	return fmt.Sprintf("pane shell %d, below it: %v", shell, states)
}

// waitLag polls the screen until the standby's row shows a replay lag that ok accepts.
func (tm *tmux) waitLag(t *testing.T, what string, ok func(bytes float64) bool) lag {
	t.Helper()
	var found lag
	waitFor(t, time.Minute, what, func(context.Context) (bool, string) {
		screen, err := tm.capture()
		if err != nil {
			return false, err.Error()
		}
		tm.lastScreen = screen
		l, seen := parseLag(screen)
		if !seen {
			return false, "no row for the standby " + standbyName + " with a lag figure on screen"
		}
		found = l
		return ok(l.bytes), "replay lag on screen " + l.text
	})
	return found
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// connect opens a superuser session to the cluster of dsn, on database db when not empty.
func connect(t *testing.T, ctx context.Context, dsn, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	if db != "" {
		cfg.Database = db
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", cfg.Database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestConsoleShowsPromotion runs the real console in tmux on its Topology view and promotes the
// standby: the promotion event and the split brain (the old primary still runs) must show on
// screen; the test logs how long after pg_ctl promote they did.
func TestConsoleShowsPromotion(t *testing.T) {
	tmuxBin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (make deps installs it): the console test needs a terminal multiplexer")
	}
	t.Parallel()
	const interval = 2 * time.Second
	s := startStack(t, interval, false)
	tm := startTmux(t, tmuxBin, s.consoleEnv(t), bin("pgactl"))
	screenHas := func(what string, parts ...string) {
		t.Helper()
		waitFor(t, time.Minute, what, func(context.Context) (bool, string) {
			screen, err := tm.capture()
			if err != nil {
				return false, err.Error()
			}
			tm.lastScreen = screen
			for _, p := range parts {
				if !strings.Contains(screen, p) {
					return false, "no " + strconv.Quote(p) + " on screen"
				}
			}
			return true, ""
		})
	}
	screenHas("the console", "1 Replication")
	tm.sendKeys(t, "2")
	screenHas("the tree on the Topology view", "primary db1", "└ db1_standby")

	if err := s.env.Stack.Cluster("db1_standby").Promote(t.Context()); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	screenHas("the promotion in the event feed and the split brain", "promotion db1_standby promoted", "SPLIT BRAIN")
	t.Logf("promotion on the console's screen %.1f s after pg_ctl promote returned (collector interval %s, screen polled every 0.25 s)",
		time.Since(promoted).Seconds(), interval)

	tm.sendKeys(t, "q")
	if code := tm.waitExit(t, 30*time.Second); code != "0" {
		t.Errorf("the console exited with status %s after q, want 0", code)
	}
}

// consoleEnv is the environment the console runs in against s: its API and admin, no colours.
func (s *stack) consoleEnv(t *testing.T) []string {
	return s.cliEnv(t, "NO_COLOR=1", "PGACTL_STATE_DIR="+s.stateDir)
}
