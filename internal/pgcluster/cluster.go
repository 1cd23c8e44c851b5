// Package pgcluster runs throwaway PostgreSQL clusters on loopback ports: plain
// servers, streaming standbys and logical publisher/subscriber pairs, for the
// test harness (internal/pgtest) and pgactl demo.
//
// As root the servers run as the postgres OS user, because initdb and postgres
// refuse root; otherwise as the current user. A cluster lives in its own
// directory: data/ (PGDATA, with the server log postgres.log), sock/ (the Unix
// socket) and cluster.json (what Open needs to find it again).
package pgcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the bootstrap superuser every cluster is created with (trust auth, loopback only).
const Superuser = "postgres"

const (
	metaFile    = "cluster.json"
	logFileName = "postgres.log"
	// maxSocketPath is the kernel's limit on a Unix socket path (sun_path) less the NUL.
	maxSocketPath = 107
)

var (
	nameRe    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	settingRe = regexp.MustCompile(`^[a-z][a-z0-9_.]*$`)

	errPortInUse = errors.New("port in use")
)

// Config describes a cluster to create.
type Config struct {
	// Name is a lowercase identifier: the cluster's directory under BaseDir and,
	// for a standby, its application_name and replication slot name.
	Name string
	// BaseDir is an existing directory to hold the cluster's directory. As
	// root it must be traversable by the postgres user. For a standby, empty
	// means the primary's.
	BaseDir  string
	Binaries Binaries // ignored for a standby, which uses its primary's
	Port     int      // 0 picks a free loopback port
	// Settings are postgresql.conf settings applied after the defaults.
	Settings map[string]string
	// Persistent servers are started through pg_ctl and outlive this process
	// until Stop. Others are children of this process that shut down
	// (immediate mode) when it exits, however it exits.
	Persistent bool
}

// Cluster is a PostgreSQL cluster created by Start or StartStandby. Its
// methods are not safe for concurrent use.
type Cluster struct {
	Name       string
	Dir        string // holds data/, sock/ and cluster.json
	DataDir    string
	SocketDir  string
	Port       int
	Major      int
	Binaries   Binaries
	Persistent bool

	server *child // the running server when it is this process's child
}

// child is a postgres server started as a child of this process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// meta is what cluster.json keeps for Open.
type meta struct {
	Name       string   `json:"name"`
	Port       int      `json:"port"`
	Binaries   Binaries `json:"binaries"`
	Persistent bool     `json:"persistent"`
}

// Start creates a cluster (initdb) and starts its server.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	c, err := create(ctx, cfg)
	if err == nil {
		err = c.startFreePort(ctx, cfg.Port == 0)
		if err != nil {
			cleanup, cancel := cleanupContext(ctx)
			defer cancel()
			err = errors.Join(err, c.Remove(cleanup))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("start cluster %s: %w", cfg.Name, err)
	}
	return c, nil
}

// Open loads the cluster kept in dir, running or not.
func Open(dir string) (*Cluster, error) {
	raw, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("open cluster: %w", err)
	}
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("open cluster %s: %w", dir, err)
	}
	return newCluster(m, dir), nil
}

func newCluster(m meta, dir string) *Cluster {
	return &Cluster{
		Name:       m.Name,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		SocketDir:  filepath.Join(dir, "sock"),
		Port:       m.Port,
		Major:      m.Binaries.Major,
		Binaries:   m.Binaries,
		Persistent: m.Persistent,
	}
}

// create lays out the cluster's directory and runs initdb.
func create(ctx context.Context, cfg Config) (*Cluster, error) {
	c, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	cmd, err := c.command(ctx, "initdb", "-D", c.DataDir, "--auth=trust", "-U", Superuser,
		"--no-sync", "--encoding=UTF8", "--locale=C")
	if err == nil {
		err = run(cmd)
	}
	if err == nil {
		err = c.configure(cfg.Settings)
	}
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(c.Dir))
	}
	return c, nil
}

// layout validates cfg and creates the cluster's directory and socket directory.
func layout(cfg Config) (*Cluster, error) {
	if !nameRe.MatchString(cfg.Name) {
		return nil, fmt.Errorf("invalid cluster name %q: want a lowercase identifier", cfg.Name)
	}
	if cfg.BaseDir == "" || cfg.Binaries.Dir == "" {
		return nil, errors.New("base dir and binaries are required")
	}
	if err := validateSettings(cfg.Settings); err != nil {
		return nil, err
	}
	base, err := filepath.Abs(cfg.BaseDir)
	if err != nil {
		return nil, fmt.Errorf("base dir: %w", err)
	}
	port := cfg.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	c := newCluster(meta{Name: cfg.Name, Port: port, Binaries: cfg.Binaries, Persistent: cfg.Persistent}, filepath.Join(base, cfg.Name))
	if n := len(filepath.Join(c.SocketDir, ".s.PGSQL.65535")); n > maxSocketPath {
		return nil, fmt.Errorf("base dir %s is too deep: socket path would be %d bytes, the limit is %d", base, n, maxSocketPath)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if err := checkTraversable(base, cred); err != nil {
		return nil, err
	}
	for _, d := range []string{c.Dir, c.SocketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		if err := chown(d, cred); err != nil {
			return nil, errors.Join(err, os.RemoveAll(c.Dir))
		}
	}
	return c, nil
}

// configure appends the defaults, then settings, to postgresql.conf (the last
// occurrence of a setting wins) and saves cluster.json.
func (c *Cluster) configure(settings map[string]string) error {
	defaults := map[string]string{
		"port":                    strconv.Itoa(c.Port),
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.SocketDir,
		"logging_collector":       "off", // stderr is the log file
		// Throwaway clusters never survive an OS crash, so durability buys nothing.
		"fsync":                 "off",
		"synchronous_commit":    "off",
		"full_page_writes":      "off",
		"shared_buffers":        "32MB",
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"track_io_timing":       "on",
		// Standbys report their positions every second, so lag settles quickly.
		"wal_receiver_status_interval": "1s",
	}
	if err := c.appendSettings(defaults); err != nil {
		return err
	}
	if err := c.appendSettings(settings); err != nil {
		return err
	}
	return c.saveMeta()
}

// appendSettings appends settings, sorted by name, to postgresql.conf.
func (c *Cluster) appendSettings(settings map[string]string) error {
	var b strings.Builder
	if err := validateSettings(settings); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(settings[k]))
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	_, err = f.WriteString(b.String())
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	return nil
}

// validateSettings refuses what would not stay one line of postgresql.conf.
func validateSettings(settings map[string]string) error {
	for k, v := range settings {
		if !settingRe.MatchString(k) {
			return fmt.Errorf("invalid setting name %q", k)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("invalid value for setting %s: line breaks and NUL are not allowed", k)
		}
	}
	return nil
}

func (c *Cluster) saveMeta() error {
	raw, err := json.MarshalIndent(meta{Name: c.Name, Port: c.Port, Binaries: c.Binaries, Persistent: c.Persistent}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, metaFile), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("save cluster.json: %w", err)
	}
	return nil
}

// startFreePort starts the server; when the port was picked for us and was
// taken meanwhile by someone else, it tries another.
func (c *Cluster) startFreePort(ctx context.Context, portPicked bool) error {
	for attempt := 1; ; attempt++ {
		err := c.Start(ctx)
		if err == nil || !portPicked || attempt == 3 || !errors.Is(err, errPortInUse) {
			return err
		}
		if c.Port, err = freePort(); err != nil {
			return err
		}
		if err := c.appendSettings(map[string]string{"port": strconv.Itoa(c.Port)}); err != nil {
			return err
		}
		if err := c.saveMeta(); err != nil {
			return err
		}
	}
}

// Start starts the server of a stopped cluster and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	if c.Running() {
		return fmt.Errorf("start %s: already running", c.Name)
	}
	var err error
	if c.Persistent {
		err = c.startDetached(ctx)
	} else {
		err = c.startChild()
	}
	if err == nil {
		err = c.waitReady(ctx)
	}
	if err != nil {
		tail := c.logTail()
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		cleanup, cancel := cleanupContext(ctx)
		defer cancel()
		return errors.Join(fmt.Errorf("start %s: %w\n%s", c.Name, err, tail), c.shutdown(cleanup, syscall.SIGQUIT))
	}
	return nil
}

// startChild runs postgres as a child that gets SIGQUIT (immediate shutdown,
// which still releases shared memory) when this process dies, and that is in
// its own process group so a terminal's Ctrl-C reaches only this process.
func (c *Cluster) startChild() error {
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(c.LogFile(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	if err := chown(c.LogFile(), cred); err != nil {
		logf.Close()
		return err
	}
	// Not CommandContext: the server must outlive the context that started it.
	cmd := exec.Command(filepath.Join(c.Binaries.Dir, "postgres"), "-D", c.DataDir)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	srv := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(srv.done) }()
	c.server = srv
	return nil
}

// startDetached starts the server through pg_ctl, so that it outlives this process.
func (c *Cluster) startDetached(ctx context.Context) error {
	cmd, err := c.command(ctx, "pg_ctl", "start", "-D", c.DataDir, "-l", c.LogFile(), "-w", "-t", "120", "-s")
	if err != nil {
		return err
	}
	return run(cmd)
}

// waitReady polls until the server accepts a connection.
func (c *Cluster) waitReady(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(c.DSN("postgres"))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = 2 * time.Second
	return poll(ctx, func() (bool, error) {
		if c.server != nil && c.server.exited() {
			return false, errors.New("postgres exited")
		}
		if c.server == nil && !c.Running() {
			return false, errors.New("postgres is not running")
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, nil
		}
		defer conn.Close(ctx)
		// Free ports are picked, not reserved: another cluster may have taken ours, and answering on
		// the port does not make it this one. Ours serves our data directory; until it answers, or
		// exits because the port is taken, keep waiting.
		var dataDir string
		if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
			return false, nil
		}
		return c.isDataDir(dataDir), nil
	})
}

// isDataDir reports whether dir, as a server reports its data_directory, is this cluster's.
func (c *Cluster) isDataDir(dir string) bool {
	if dir == c.DataDir {
		return true
	}
	want, err1 := filepath.EvalSymlinks(c.DataDir)
	got, err2 := filepath.EvalSymlinks(dir)
	return err1 == nil && err2 == nil && want == got
}

func (s *child) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop shuts the server down cleanly (fast mode: a shutdown checkpoint) and
// waits for it to exit. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	if err := c.shutdown(ctx, syscall.SIGINT); err != nil {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	return nil
}

// Remove stops the server in immediate mode and deletes the cluster's directory.
func (c *Cluster) Remove(ctx context.Context) error {
	err := c.shutdown(ctx, syscall.SIGQUIT)
	if err == nil {
		err = os.RemoveAll(c.Dir)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	return nil
}

// shutdown signals the postmaster (SIGINT fast, SIGQUIT immediate) and waits
// for it to exit, killing it if ctx ends first.
func (c *Cluster) shutdown(ctx context.Context, sig syscall.Signal) error {
	if srv := c.server; srv != nil {
		c.server = nil
		_ = srv.cmd.Process.Signal(sig)
		select {
		case <-srv.done:
			return nil
		case <-ctx.Done():
			_ = srv.cmd.Process.Kill()
			<-srv.done
			return ctx.Err()
		}
	}
	pid := c.postmasterPID()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postmaster %d: %w", pid, err)
	}
	err := poll(ctx, func() (bool, error) { return c.postmasterPID() == 0, nil })
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return err
}

// Running reports whether the cluster's server is up.
func (c *Cluster) Running() bool {
	if c.server != nil {
		return !c.server.exited()
	}
	return c.postmasterPID() != 0
}

// postmasterPID returns the pid in postmaster.pid if that process is alive
// and is this cluster's server (its working directory is the data directory,
// which guards against a stale file naming a recycled pid), else 0.
func (c *Cluster) postmasterPID() int {
	raw, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return 0
	}
	want, err := filepath.EvalSymlinks(c.DataDir)
	if err != nil || cwd != want {
		return 0
	}
	return pid
}

// DSN is the superuser's connection URL for database db.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.Port, url.PathEscape(db))
}

// LogFile is the server's log.
func (c *Cluster) LogFile() string { return filepath.Join(c.DataDir, logFileName) }

// logTail returns the last lines of the server log, for error messages.
func (c *Cluster) logTail() string {
	const maxTail = 8 << 10
	f, err := os.Open(c.LogFile())
	if err != nil {
		return "(no server log)"
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > maxTail {
		_, _ = f.Seek(-maxTail, io.SeekEnd)
	}
	raw, _ := io.ReadAll(io.LimitReader(f, maxTail))
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "server log " + c.LogFile() + ":\n" + strings.Join(lines, "\n")
}

// command prepares one of the cluster's binaries to run as the server user in the cluster's directory.
func (c *Cluster) command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.Binaries.Dir, name), args...)
	cmd.Dir = c.Dir // the server user must be able to enter its working directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd, nil
}

// run runs cmd, putting its output in the error when it fails.
func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, bytes.TrimSpace(out))
	}
	return nil
}

// exec runs one statement as the superuser on database db.
func (c *Cluster) exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// queryBool runs a query returning one boolean as the superuser on database db.
func (c *Cluster) queryBool(ctx context.Context, db, sql string, args ...any) (bool, error) {
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ok bool
	err = conn.QueryRow(ctx, sql, args...).Scan(&ok)
	return ok, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanupContext bounds undoing a failed operation, even when the failure
// was ctx ending.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// poll calls cond every 25ms until it reports done or fails, or ctx ends.
func poll(ctx context.Context, cond func() (bool, error)) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := cond()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
