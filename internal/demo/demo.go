// Package demo starts the whole pgAnalytics stack on this machine for `pgactl demo`: a metrics-store
// cluster, the API on loopback, a monitored primary with a streaming standby (and, with Cascade, a
// standby of that standby), a registered collector and a small write workload, all throwaway and
// removed when the demo stops.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/devca"
	"github.com/pganalytics/pganalytics/internal/pgcluster"
)

// Options configure a demo run.
type Options struct {
	BinDir   string        // holds pganalytics-api and pganalytics
	StateDir string        // demo.env and the collector's token/spool go to StateDir/demo
	APIAddr  string        // loopback listen address of the API, default 127.0.0.1:8080
	Interval time.Duration // collector interval, default 5s
	Workload bool          // keep writing to the primary so lag moves
	Cascade  bool          // add db1_cascade, a standby streaming from db1_standby
	APIEnv   []string      // more environment for the API, e.g. ALERTMANAGER_URLS=http://127.0.0.1:9093
	// PlainHTTP turns TLS off. By default a throwaway CA signs the API's and PostgreSQL's
	// certificates; collectors, pgactl and the API verify them (sslmode=verify-full).
	PlainHTTP bool
	// MutualTLS gives the collector a client certificate and makes the API require one from
	// collectors (ignored with PlainHTTP).
	MutualTLS bool
	Out      io.Writer     // progress lines for the person running the demo
	Logger   *slog.Logger
}

// Env is what a running demo offers: the values written to demo.env.
type Env struct {
	File  string            // path of demo.env
	Vars  map[string]string // KEY=VALUE pairs, see EnvKeys
	Stack *Stack
}

// Stack is the set of processes and clusters a demo runs. Its methods are not safe for concurrent
// use; call them from the function Run hands the Env to.
type Stack struct {
	scratch *pgcluster.Scratch
	store   *pgcluster.Cluster
	primary *pgcluster.Cluster
	standby *pgcluster.Cluster
	cascade *pgcluster.Cluster // nil without Options.Cascade
	procs   []*process
	dir     string
	apiURL  string
	tls     *stackTLS // nil with Options.PlainHTTP
	http    *http.Client
}

// stackTLS is the demo's throwaway CA and what it issued.
type stackTLS struct {
	ca        *devca.CA
	api, pg   devca.Pair
	collector *devca.Pair // with Options.MutualTLS
}

// tlsHosts are the names the demo's server certificates are valid for.
var tlsHosts = []string{"127.0.0.1", "localhost", "::1"}

// certValidity is how long the demo's certificates last: far beyond any demo, and short enough
// that the smoke test's days-to-expiry figure means something.
const certValidity = 90 * 24 * time.Hour

func newStackTLS(dir string, mutual bool) (*stackTLS, error) {
	ca, err := devca.New(dir, "pgAnalytics demo CA", certValidity+24*time.Hour)
	if err != nil {
		return nil, err
	}
	t := &stackTLS{ca: ca}
	if t.api, err = ca.IssueServer("api", tlsHosts, certValidity); err != nil {
		return nil, err
	}
	if t.pg, err = ca.IssueServer("postgres", tlsHosts, certValidity); err != nil {
		return nil, err
	}
	if mutual {
		p, err := ca.IssueClient("demo-collector", certValidity)
		if err != nil {
			return nil, err
		}
		t.collector = &p
	}
	return t, nil
}

// dsn is the connection URL of c for user and db: verify-full against the demo CA, or plain.
func (st *Stack) dsn(c *pgcluster.Cluster, user, db string) string {
	if st.tls == nil {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.Port, db)
	}
	return c.VerifyFullDSN(user, db, st.tls.ca.CertFile)
}

// enableTLS turns TLS on in c (nothing with Options.PlainHTTP).
func (st *Stack) enableTLS(ctx context.Context, c *pgcluster.Cluster) error {
	if st.tls == nil {
		return nil
	}
	return c.EnableTLS(ctx, st.tls.pg.CertFile, st.tls.pg.KeyFile)
}

// Names of the stack's monitored clusters, for Cluster.
const (
	ClusterPrimary = "db1"
	ClusterStandby = "db1_standby"
	ClusterCascade = "db1_cascade"
)

// Cluster is one of the stack's monitored clusters by name (nil if the stack has none of that
// name), for tests that fail over, rewind or break replication.
func (st *Stack) Cluster(name string) *pgcluster.Cluster {
	switch name {
	case ClusterPrimary:
		return st.primary
	case ClusterStandby:
		return st.standby
	case ClusterCascade:
		return st.cascade
	}
	return nil
}

// Names of the stack's processes, for Kill, Restart and PID.
const (
	ProcessAPI          = "api"
	ProcessCollector    = "collector"
	ProcessAlertmanager = "alertmanager"
)

// process is a supervised program and the command line to start it again.
type process struct {
	name    string
	env     []string
	logFile string
	bin     string
	args    []string

	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited; err is set then
	err  error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Run starts the stack, calls use with its Env (the console, or a wait for Ctrl-C), then stops
// everything and removes the clusters, whatever use returns.
func Run(ctx context.Context, opts Options, use func(context.Context, Env) error) (err error) {
	opts = withDefaults(opts)
	st := &Stack{}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		fmt.Fprintln(opts.Out, "demo: stopping collector, API and clusters")
		err = errors.Join(err, st.stop(stopCtx))
	}()
	env, err := st.start(ctx, opts)
	if err != nil {
		return err
	}
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	if opts.Workload {
		go runWorkload(workCtx, st.primary.DSN("demo"), opts.Logger)
	}
	return use(ctx, env)
}

func withDefaults(o Options) Options {
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:8080"
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (st *Stack) start(ctx context.Context, o Options) (Env, error) {
	step := func(format string, args ...any) { fmt.Fprintf(o.Out, "demo: "+format+"\n", args...) }
	if err := checkLoopback(o.APIAddr); err != nil {
		return Env{}, err
	}
	apiBin, collectorBin := filepath.Join(o.BinDir, "pganalytics-api"), filepath.Join(o.BinDir, "pganalytics")
	for _, b := range []string{apiBin, collectorBin} {
		if _, err := os.Stat(b); err != nil {
			return Env{}, fmt.Errorf("binary %s missing (run make build): %w", b, err)
		}
	}
	st.dir = filepath.Join(o.StateDir, "demo")
	if err := os.RemoveAll(st.dir); err != nil {
		return Env{}, fmt.Errorf("clear %s: %w", st.dir, err)
	}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return Env{}, fmt.Errorf("create %s: %w", st.dir, err)
	}

	st.http = &http.Client{Timeout: 2 * time.Second}
	scheme := "http"
	if !o.PlainHTTP {
		var err error
		if st.tls, err = newStackTLS(filepath.Join(st.dir, "tls"), o.MutualTLS); err != nil {
			return Env{}, err
		}
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(st.tls.ca.CertFile)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			return Env{}, fmt.Errorf("read the demo CA: %v", err)
		}
		st.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		scheme = "https"
		step("TLS everywhere: a throwaway CA in %s signs the API's and PostgreSQL's certificates", st.tls.ca.Dir)
	}

	bins, err := pgcluster.BinariesFromEnv(ctx)
	if err != nil {
		return Env{}, fmt.Errorf("find postgresql binaries: %w", err)
	}
	step("PostgreSQL %d binaries from %s", bins.Major, bins.Dir)
	if st.scratch, err = pgcluster.NewScratch(); err != nil {
		return Env{}, err
	}

	step("starting the metrics store cluster")
	st.store, err = pgcluster.Start(ctx, pgcluster.Config{Name: "store", BaseDir: st.scratch.Dir, Binaries: bins})
	if err != nil {
		return Env{}, err
	}
	if err := st.enableTLS(ctx, st.store); err != nil {
		return Env{}, err
	}
	if err := execSQL(ctx, st.store.DSN("postgres"), "CREATE DATABASE pganalytics"); err != nil {
		return Env{}, err
	}
	storeURL := st.dsn(st.store, pgcluster.Superuser, "pganalytics")

	step("starting the monitored primary and its streaming standby")
	st.primary, err = pgcluster.Start(ctx, pgcluster.Config{
		Name: "db1", BaseDir: st.scratch.Dir, Binaries: bins,
		// wal_log_hints and full_page_writes let pg_rewind turn a former primary into a standby.
		Settings: map[string]string{"wal_level": "logical", "track_io_timing": "on", "wal_log_hints": "on", "full_page_writes": "on"},
	})
	if err != nil {
		return Env{}, err
	}
	if err := st.enableTLS(ctx, st.primary); err != nil { // before the standbys: they inherit it
		return Env{}, err
	}
	monitorPassword := secret(18)
	for _, q := range []string{
		"CREATE ROLE pganalytics WITH LOGIN NOINHERIT PASSWORD '" + monitorPassword + "'",
		"GRANT pg_monitor TO pganalytics",
		"CREATE DATABASE demo",
	} {
		if err := execSQL(ctx, st.primary.DSN("postgres"), q); err != nil {
			return Env{}, err
		}
	}
	if err := execSQL(ctx, st.primary.DSN("demo"), "CREATE TABLE orders (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text)"); err != nil {
		return Env{}, err
	}
	st.standby, err = pgcluster.StartStandby(ctx, st.primary, pgcluster.Config{Name: "db1_standby"})
	if err != nil {
		return Env{}, err
	}
	monitored := map[string]*pgcluster.Cluster{"db1": st.primary, "db1_standby": st.standby}
	if o.Cascade {
		step("starting db1_cascade, a standby of the standby")
		if st.cascade, err = pgcluster.StartStandby(ctx, st.standby, pgcluster.Config{Name: "db1_cascade"}); err != nil {
			return Env{}, err
		}
		monitored["db1_cascade"] = st.cascade
	}

	vars := map[string]string{
		"PGACTL_API_URL":         scheme + "://" + o.APIAddr,
		"PGACTL_USERNAME":        "admin",
		"PGACTL_PASSWORD":        secret(15),
		"PGACTL_VIEWER_USERNAME": "viewer",
		"PGACTL_VIEWER_PASSWORD": secret(15),
		"PGACTL_DATABASE_URL":    storeURL,
		"PGACTL_CORS_ORIGIN":     "http://localhost:3000",
		"REGISTRATION_SECRET":    secret(32),
		"COLLECTOR_CONFIG":       filepath.Join(st.dir, "collector.toml"),
		"BIN_DIR":                o.BinDir,
		"DEMO_DIR":               st.dir,
		"PRIMARY_URL":            st.dsn(st.primary, pgcluster.Superuser, "postgres"),
		"STANDBY_URL":            st.dsn(st.standby, pgcluster.Superuser, "postgres"),
		"BACKUP_DIR":             filepath.Join(st.dir, "backups"),
	}
	if st.cascade != nil {
		vars["CASCADE_URL"] = st.dsn(st.cascade, pgcluster.Superuser, "postgres")
	}
	vars["PGACTL_CA_FILE"] = "" // none with PlainHTTP: clients use the system roots
	if st.tls != nil {
		vars["PGACTL_CA_FILE"] = st.tls.ca.CertFile
	}
	apiEnv := []string{
		"DATABASE_URL=" + storeURL,
		"JWT_SECRET_KEY=" + secret(32),
		"REGISTRATION_SECRET=" + vars["REGISTRATION_SECRET"],
		"LISTEN_ADDR=" + o.APIAddr,
		"ENVIRONMENT=development",
		"CORS_ALLOWED_ORIGINS=" + vars["PGACTL_CORS_ORIGIN"],
		"DRAIN_DELAY=0s", // one server, no load balancer to leave: stop at once
	}
	if st.tls != nil {
		apiEnv = append(apiEnv, "TLS_ENABLED=true", "TLS_CERT_FILE="+st.tls.api.CertFile, "TLS_KEY_FILE="+st.tls.api.KeyFile)
		if st.tls.collector != nil {
			apiEnv = append(apiEnv, "TLS_CLIENT_CA_FILE="+st.tls.ca.CertFile, "TLS_REQUIRE_COLLECTOR_CERT=true")
		}
	}

	// Alertmanager, when installed (make deps installs it), so that the alerts' whole path runs:
	// `pgactl alerts test` proves delivery, its web UI shows what the API sends.
	if amURL, err := st.startAlertmanager(ctx, o.APIAddr); err != nil {
		return Env{}, err
	} else if amURL != "" {
		step("started Alertmanager on %s (alerts are delivered there; it has no receivers)", amURL)
		vars["ALERTMANAGER_URL"] = amURL
		apiEnv = append(apiEnv, "ALERTMANAGER_URLS="+amURL, "ALERT_EVALUATION_INTERVAL=5s")
	}
	apiEnv = append(apiEnv, o.APIEnv...) // the caller's last: they win

	step("migrating the metrics store")
	if out, err := runOnce(ctx, apiEnv, "", apiBin, "migrate"); err != nil {
		return Env{}, fmt.Errorf("migrate: %w: %s", err, out)
	}
	for _, u := range []struct{ name, role, pw string }{
		{"admin", "admin", vars["PGACTL_PASSWORD"]},
		{"viewer", "viewer", vars["PGACTL_VIEWER_PASSWORD"]},
	} {
		if out, err := runOnce(ctx, apiEnv, u.pw+"\n", apiBin, "user", "add", u.name, "--role", u.role); err != nil {
			return Env{}, fmt.Errorf("create user %s: %w: %s", u.name, err, out)
		}
	}

	step("starting the API on %s", vars["PGACTL_API_URL"])
	st.apiURL = vars["PGACTL_API_URL"]
	api, err := st.spawn(ProcessAPI, apiEnv, filepath.Join(st.dir, "api.log"), apiBin, "serve")
	if err != nil {
		return Env{}, err
	}
	if err := st.waitHealthy(ctx, api); err != nil {
		return Env{}, err
	}

	step("registering and starting the collector (every %s)", o.Interval)
	passwordFile := filepath.Join(st.dir, "monitor.password")
	if err := os.WriteFile(passwordFile, []byte(monitorPassword+"\n"), 0o600); err != nil {
		return Env{}, fmt.Errorf("write monitor password: %w", err)
	}
	instances := map[string]string{}
	for name, c := range monitored {
		instances[name] = st.dsn(c, "pganalytics", "postgres")
	}
	if err := writeCollectorConfig(vars["COLLECTOR_CONFIG"], st.dir, vars["PGACTL_API_URL"], st.tls, o.Interval, passwordFile, instances); err != nil {
		return Env{}, err
	}
	collectorEnv := []string{"REGISTRATION_SECRET=" + vars["REGISTRATION_SECRET"]}
	if out, err := runOnce(ctx, collectorEnv, "", collectorBin, "register", "--config", vars["COLLECTOR_CONFIG"]); err != nil {
		return Env{}, fmt.Errorf("register collector: %w: %s", err, out)
	}
	if _, err := st.spawn(ProcessCollector, nil, filepath.Join(st.dir, "collector.log"), collectorBin, "--config", vars["COLLECTOR_CONFIG"]); err != nil {
		return Env{}, err
	}

	file := filepath.Join(st.dir, "demo.env")
	if err := writeEnvFile(file, vars); err != nil {
		return Env{}, err
	}
	return Env{File: file, Vars: vars, Stack: st}, nil
}

// alertmanagerBinary is Debian's Alertmanager server.
const alertmanagerBinary = "prometheus-alertmanager"

// startAlertmanager runs Alertmanager on a free loopback port (never the API's, which is free
// too until the API starts) with a receiver that sends nowhere, and returns its URL; "" when it is
// not installed.
func (st *Stack) startAlertmanager(ctx context.Context, apiAddr string) (string, error) {
	bin, err := exec.LookPath(alertmanagerBinary)
	if err != nil {
		return "", nil
	}
	_, apiPort, _ := net.SplitHostPort(apiAddr)
	var addr string
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("alertmanager port: %w", err)
		}
		addr = ln.Addr().String()
		ln.Close()
		if _, port, _ := net.SplitHostPort(addr); port != apiPort {
			break
		}
	}
	cfg := filepath.Join(st.dir, "alertmanager.yml")
	const conf = "# Written by pgactl demo: every alert is kept and shown, none is sent on.\n" +
		"route:\n  receiver: demo\n  group_by: [alertname, cluster]\n  group_wait: 5s\nreceivers:\n  - name: demo\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", cfg, err)
	}
	p, err := st.spawn(ProcessAlertmanager, nil, filepath.Join(st.dir, "alertmanager.log"), bin,
		"--config.file="+cfg, "--storage.path="+filepath.Join(st.dir, "alertmanager"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.done:
			return "", fmt.Errorf("alertmanager exited: %v (log: %s)", p.err, p.logFile)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := client.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, nil
			}
		}
	}
	return "", fmt.Errorf("alertmanager not ready within 30s (log: %s)", p.logFile)
}

// checkLoopback refuses to bind the demo anywhere but loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("api address %q: the demo listens on loopback only", addr)
	}
	return nil
}

func (st *Stack) spawn(name string, env []string, logFile string, bin string, args ...string) (*process, error) {
	p := &process{name: name, env: env, logFile: logFile, bin: bin, args: args}
	if err := p.start(); err != nil {
		return nil, err
	}
	st.procs = append(st.procs, p)
	return p, nil
}

// start runs the process's command line, its output appended to its log file.
func (p *process) start() error {
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
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	done := p.done
	go func() { p.err = cmd.Wait(); log.Close(); close(done) }()
	return nil
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
	if err != nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends sig to the named process and waits until it has exited: a way to take the API or the
// collector away mid-run (outage and crash tests). Restart brings it back.
func (st *Stack) Kill(ctx context.Context, name string, sig syscall.Signal) error {
	p, err := st.process(name)
	if err != nil {
		return err
	}
	if p.exited() {
		return fmt.Errorf("%s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to exit after %v: %w", name, sig, ctx.Err())
	}
}

// Restart starts the named process again, after Kill or after it exited by itself, with its
// original command line and log file; the API is waited for until it is healthy.
func (st *Stack) Restart(ctx context.Context, name string) error {
	p, err := st.process(name)
	if err != nil {
		return err
	}
	if !p.exited() {
		return fmt.Errorf("%s is still running", name)
	}
	if err := p.start(); err != nil {
		return err
	}
	if name == ProcessAPI {
		return st.waitHealthy(ctx, p)
	}
	return nil
}

// stop ends processes in reverse start order (collector first, so it flushes to a live API), then the
// clusters, then removes their directory.
func (st *Stack) stop(ctx context.Context) error {
	var errs []error
	for i := len(st.procs) - 1; i >= 0; i-- {
		p := st.procs[i]
		if p.exited() {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(12 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("%s did not stop within 12s; killed", p.name))
		}
	}
	for _, c := range []*pgcluster.Cluster{st.cascade, st.standby, st.primary, st.store} {
		if c != nil {
			if err := c.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if st.scratch != nil {
		errs = append(errs, st.scratch.Close())
	}
	// The credentials die with the stack; the logs stay for a look afterwards.
	if st.dir != "" {
		for _, f := range []string{"demo.env", "monitor.password", "collector.token"} {
			if err := os.Remove(filepath.Join(st.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func runOnce(ctx context.Context, env []string, stdin string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitHealthy polls the API's health endpoint until it answers 200, the process exits or 30 s pass.
func (st *Stack) waitHealthy(ctx context.Context, p *process) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("api exited: %v (log: %s)", p.err, p.logFile)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := st.http.Get(st.apiURL + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("api did not become healthy within 30s (log: %s)", p.logFile)
}

func writeCollectorConfig(path, dir, apiURL string, t *stackTLS, interval time.Duration, passwordFile string, instances map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by pgactl demo.\n[collector]\nname = %q\ninterval = %q\n\n[api]\nurl = %q\ntoken_file = %q\n",
		"demo-collector", interval.String(), apiURL, filepath.Join(dir, "collector.token"))
	if t != nil {
		fmt.Fprintf(&b, "ca_file = %q\n", t.ca.CertFile)
		if t.collector != nil {
			fmt.Fprintf(&b, "cert_file = %q\nkey_file = %q\n", t.collector.CertFile, t.collector.KeyFile)
		}
	}
	b.WriteString("\n")
	names := make([]string, 0, len(instances))
	for n := range instances {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "[[postgres]]\nname = %q\ndsn = %q\npassword_file = %q\n\n", n, instances[n], passwordFile)
	}
	fmt.Fprintf(&b, "[pg_replication]\nenabled = true\ninterval = %q\n\n[buffer]\nspool_dir = %q\n",
		interval.String(), filepath.Join(dir, "spool"))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write collector config: %w", err)
	}
	return nil
}

// EnvKeys lists demo.env's keys in the order they are written.
func EnvKeys(vars map[string]string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeEnvFile(path string, vars map[string]string) error {
	var b strings.Builder
	b.WriteString("# pgactl demo environment; valid while `pgactl demo` runs. Source it: set -a; . THIS_FILE; set +a\n")
	for _, k := range EnvKeys(vars) {
		fmt.Fprintf(&b, "%s=%s\n", k, vars[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// secret returns n random bytes, URL-safe base64 encoded (no padding, safe in env files and DSNs).
func secret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// runWorkload inserts a few rows per second on the primary so the standby has WAL to replay.
func runWorkload(ctx context.Context, dsn string, log *slog.Logger) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		log.Warn("workload: connect", "err", err)
		return
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := conn.Exec(ctx, "INSERT INTO orders (payload) SELECT md5(random()::text) FROM generate_series(1, 200)"); err != nil && ctx.Err() == nil {
				log.Warn("workload: insert", "err", err)
			}
		}
	}
}
