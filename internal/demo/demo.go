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
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/deploy"
	"github.com/pganalytics/pganalytics/internal/api"
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
	// HA runs two API servers (ProcessAPI1, ProcessAPI2) behind haproxy, which listens on APIAddr
	// with the shipped deploy/haproxy/haproxy.cfg (needs TLS).
	HA     bool
	Out    io.Writer // progress lines for the person running the demo
	Logger *slog.Logger
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
	ProcessAPI          = "api" // the API server, without Options.HA
	ProcessAPI1         = "api-1"
	ProcessAPI2         = "api-2"
	ProcessHAProxy      = "haproxy"
	ProcessCollector    = "collector"
	ProcessAlertmanager = "alertmanager"
)

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
	if o.HA && o.PlainHTTP {
		return Env{}, errors.New("the HA topology runs haproxy with TLS: drop --plain-http")
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
		// The second person of the runbook's two-person approvals.
		"PGACTL_APPROVER_USERNAME": "approver",
		"PGACTL_APPROVER_PASSWORD": secret(15),
		"PGACTL_DATABASE_URL":      storeURL,
		"PGACTL_CORS_ORIGIN":       "http://localhost:3000",
		"REGISTRATION_SECRET":      secret(32),
		"COLLECTOR_CONFIG":         filepath.Join(st.dir, "collector.toml"),
		"BIN_DIR":                  o.BinDir,
		"DEMO_DIR":                 st.dir,
		"PRIMARY_URL":              st.dsn(st.primary, pgcluster.Superuser, "postgres"),
		"STANDBY_URL":              st.dsn(st.standby, pgcluster.Superuser, "postgres"),
		"BACKUP_DIR":               filepath.Join(st.dir, "backups"),
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

	vars["ALERTMANAGER_URL"] = "" // none unless installed
	// Alertmanager, when installed (make deps installs it), so that the alerts' whole path runs:
	// `pgactl alerts test` proves delivery, its web UI shows what the API sends.
	if amURL, err := st.startAlertmanager(ctx, o.APIAddr); err != nil {
		return Env{}, err
	} else if amURL != "" {
		step("started Alertmanager on %s (alerts are delivered there; it has no receivers)", amURL)
		vars["ALERTMANAGER_URL"] = amURL
		apiEnv = append(apiEnv, "ALERTMANAGER_URLS="+amURL, "ALERT_EVALUATION_INTERVAL=5s")
	}
	step("migrating the metrics store")
	if out, err := runOnce(ctx, append(slices.Clone(apiEnv), o.APIEnv...), "", apiBin, "migrate"); err != nil {
		return Env{}, fmt.Errorf("migrate: %w: %s", err, out)
	}
	step("creating the Grafana datasource's read-only role (deploy/grafana/grafana_reader.sql)")
	if err := execSQL(ctx, storeURL, string(deploy.GrafanaReaderSQL)); err != nil {
		return Env{}, fmt.Errorf("grafana_reader.sql: %w", err)
	}
	every := strings.Join(api.TeamRoles, ",")
	for _, u := range []struct{ name, role, pw, team string }{
		{"admin", "admin", vars["PGACTL_PASSWORD"], every},
		{"viewer", "viewer", vars["PGACTL_VIEWER_PASSWORD"], ""},
		{"approver", "operator", vars["PGACTL_APPROVER_PASSWORD"], every},
	} {
		args := []string{"user", "add", u.name, "--role", u.role}
		if u.team != "" {
			args = append(args, "--team-roles", u.team)
		}
		if out, err := runOnce(ctx, append(slices.Clone(apiEnv), o.APIEnv...), u.pw+"\n", apiBin, args...); err != nil {
			return Env{}, fmt.Errorf("create user %s: %w: %s", u.name, err, out)
		}
	}

	if vars["PGACTL_API_SERVERS"], err = st.startAPIServers(ctx, o, scheme, apiBin, apiEnv, step); err != nil {
		return Env{}, err
	}
	if o.HA {
		stats, err := st.startHAProxy(ctx, o)
		if err != nil {
			return Env{}, err
		}
		vars["HAPROXY_STATS_URL"] = stats
		step("haproxy on %s in front of both (deploy/haproxy/haproxy.cfg; statistics on %s)", vars["PGACTL_API_URL"], stats)
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
		case <-p.exitedCh():
			return "", fmt.Errorf("alertmanager exited: %v (log: %s)", p.lastErr(), p.logFile)
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

// stop ends processes in reverse start order (collector first, so it flushes to a live API), then the
// clusters, then removes their directory.
func (st *Stack) stop(ctx context.Context) error {
	var errs []error
	for _, p := range st.procs {
		p.retire() // no more restarts: the stack is going
	}
	// In reverse start order; the API servers, started one after another, drain together.
	for i := len(st.procs) - 1; i >= 0; {
		j := i
		for j > 0 && st.procs[i].keepUp && st.procs[j-1].keepUp {
			j--
		}
		group := st.procs[j : i+1]
		groupErrs := make([]error, len(group))
		var wg sync.WaitGroup
		for k, p := range group {
			wg.Go(func() { groupErrs[k] = p.terminate(12 * time.Second) })
		}
		wg.Wait()
		errs = append(errs, groupErrs...)
		i = j - 1
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
		for _, f := range []string{"demo.env", "monitor.password", "collector.token", "tls",
			ProcessAPI + ".pid", ProcessAPI1 + ".pid", ProcessAPI2 + ".pid"} {
			if err := os.RemoveAll(filepath.Join(st.dir, f)); err != nil {
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

// waitHealthy polls the process's health URL until it answers 200, the process exits or 30 s pass.
func (st *Stack) waitHealthy(ctx context.Context, p *process) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exitedCh():
			return fmt.Errorf("%s exited: %v (log: %s)", p.name, p.lastErr(), p.logFile)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := st.http.Get(p.healthURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s did not become healthy within 30s (log: %s)", p.name, p.logFile)
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
