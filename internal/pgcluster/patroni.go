package pgcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PatroniConfig describes a Patroni cluster to start: one etcd and Members Patroni daemons, each
// managing its own PostgreSQL, on free loopback ports inside BaseDir (a Scratch's directory, so the
// reaper finds the data directories should this process die).
type PatroniConfig struct {
	BaseDir  string
	Binaries Binaries
	Scope    string // default "demo"
	Members  int    // default 3
}

// PatroniCluster is a running etcd and its Patroni members.
type PatroniCluster struct {
	Scope   string
	Members []*PatroniMember
	etcd    *child
	dir     string
	rest    *http.Client // loopback only: never through a proxy from the environment
}

// PatroniMember is one Patroni daemon and the PostgreSQL it manages.
type PatroniMember struct {
	Name    string
	APIURL  string // http://127.0.0.1:port
	PGPort  int
	DataDir string
	proc    *child
	log     string
}

// DSN connects to the member's postgres database as the superuser (trust on loopback).
func (m *PatroniMember) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", m.PGPort)
}

// StartPatroni starts etcd and the members and waits until Patroni reports one leader and every
// member running. Timings are tight (loop_wait 1 s) so a switchover settles in seconds.
func StartPatroni(ctx context.Context, cfg PatroniConfig) (pc *PatroniCluster, err error) {
	if _, err := exec.LookPath("patroni"); err != nil {
		return nil, fmt.Errorf("patroni not found (apt-get install patroni etcd-server): %w", err)
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, fmt.Errorf("etcd not found (apt-get install etcd-server): %w", err)
	}
	if cfg.Scope == "" {
		cfg.Scope = "demo"
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	pc = &PatroniCluster{Scope: cfg.Scope, dir: cfg.BaseDir,
		rest: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			pc.Stop()
		}
	}()
	etcdURL, err := pc.startEtcd(cred)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Members; i++ {
		m, err := pc.startMember(cfg, fmt.Sprintf("pg%d", i), etcdURL, cred)
		if err != nil {
			return nil, err
		}
		pc.Members = append(pc.Members, m)
	}
	if err := pc.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	return pc, nil
}

func (pc *PatroniCluster) startEtcd(cred *syscall.Credential) (string, error) {
	client, errC := freePort()
	peer, errP := freePort()
	if err := errors.Join(errC, errP); err != nil {
		return "", err
	}
	dir := filepath.Join(pc.dir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("etcd dir: %w", err)
	}
	if err := chown(dir, cred); err != nil {
		return "", err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command("etcd", "--name", "etcd", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "etcd="+peerURL, "--log-level", "warn")
	var err error
	if pc.etcd, err = startDaemon(cmd, filepath.Join(dir, "etcd.log"), cred); err != nil {
		return "", fmt.Errorf("start etcd: %w", err)
	}
	return clientURL, nil
}

func (pc *PatroniCluster) startMember(cfg PatroniConfig, name, etcdURL string, cred *syscall.Credential) (*PatroniMember, error) {
	apiPort, errA := freePort()
	pgPort, errP := freePort()
	if err := errors.Join(errA, errP); err != nil {
		return nil, err
	}
	dir := filepath.Join(pc.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("patroni member dir: %w", err)
	}
	if err := chown(dir, cred); err != nil {
		return nil, err
	}
	m := &PatroniMember{Name: name, APIURL: fmt.Sprintf("http://127.0.0.1:%d", apiPort), PGPort: pgPort,
		DataDir: filepath.Join(dir, "data"), log: filepath.Join(dir, "patroni.log")}
	pgAddr := "127.0.0.1:" + strconv.Itoa(pgPort)
	apiAddr := "127.0.0.1:" + strconv.Itoa(apiPort)
	// JSON is YAML: Patroni reads this as its configuration file.
	conf := map[string]any{
		"scope":   cfg.Scope,
		"name":    name,
		"log":     map[string]any{"level": "INFO"},
		"restapi": map[string]any{"listen": apiAddr, "connect_address": apiAddr},
		"etcd3":   map[string]any{"hosts": strings.TrimPrefix(etcdURL, "http://")},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl": 20, "loop_wait": 1, "retry_timeout": 5,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"parameters":    map[string]any{"wal_log_hints": "on", "max_wal_senders": 10, "max_replication_slots": 10},
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, "no-sync"},
		},
		"postgresql": map[string]any{
			"listen":          pgAddr,
			"connect_address": pgAddr,
			"data_dir":        m.DataDir,
			"bin_dir":         cfg.Binaries.Dir,
			"pgpass":          filepath.Join(dir, "pgpass"),
			"authentication": map[string]any{
				"replication": map[string]any{"username": "replicator", "password": "replicator"},
				"superuser":   map[string]any{"username": "postgres", "password": "postgres"},
				"rewind":      map[string]any{"username": "rewinder", "password": "rewinder"},
			},
			"parameters": map[string]any{"unix_socket_directories": dir, "fsync": "off"},
			"pg_hba": []string{
				"local all all trust",
				"host all all 127.0.0.1/32 trust",
				"host replication all 127.0.0.1/32 trust",
			},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("patroni config: %w", err)
	}
	confFile := filepath.Join(dir, "patroni.yml")
	if err := writeServerFile(confFile, data); err != nil {
		return nil, err
	}
	cmd := exec.Command("patroni", confFile)
	cmd.Dir = dir
	if m.proc, err = startDaemon(cmd, m.log, cred); err != nil {
		return nil, fmt.Errorf("start patroni %s: %w", name, err)
	}
	return m, nil
}

// startDaemon runs cmd as the server user, logging to logFile, killed when this process dies.
func startDaemon(cmd *exec.Cmd, logFile string, cred *syscall.Credential) (*child, error) {
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	if err := chown(logFile, cred); err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

// patroniMemberView is the part of a /cluster member the harness needs.
type patroniMemberView struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	State string `json:"state"`
}

// Cluster reads /cluster from the first member that answers.
func (pc *PatroniCluster) cluster(ctx context.Context) ([]patroniMemberView, error) {
	var errs []error
	for _, m := range pc.Members {
		var out struct {
			Members []patroniMemberView `json:"members"`
		}
		if err := pc.call(ctx, http.MethodGet, m.APIURL+"/cluster", nil, &out); err != nil {
			errs = append(errs, err)
			continue
		}
		return out.Members, nil
	}
	return nil, errors.Join(errs...)
}

// Leader is the member holding the leader lock.
func (pc *PatroniCluster) Leader(ctx context.Context) (*PatroniMember, error) {
	members, err := pc.cluster(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range members {
		if v.Role == "leader" {
			return pc.Member(v.Name), nil
		}
	}
	return nil, errors.New("patroni: no leader")
}

// Member is the member named name, or nil.
func (pc *PatroniCluster) Member(name string) *PatroniMember {
	for _, m := range pc.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// WaitHealthy waits until /cluster lists every member running and one of them leader.
func (pc *PatroniCluster) WaitHealthy(ctx context.Context) error {
	var last string
	err := poll(ctx, func() (bool, error) {
		for _, m := range pc.Members {
			if m.proc.exited() {
				return false, fmt.Errorf("patroni %s exited: %s", m.Name, tail(m.log))
			}
		}
		members, err := pc.cluster(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		leaders, running := 0, 0
		for _, v := range members {
			if v.Role == "leader" {
				leaders++
			}
			if v.State == "running" || v.State == "streaming" {
				running++
			}
		}
		last = fmt.Sprintf("%d of %d members running, %d leader(s)", running, len(pc.Members), leaders)
		return leaders == 1 && running == len(pc.Members) && len(members) == len(pc.Members), nil
	})
	if err != nil {
		return fmt.Errorf("patroni cluster not healthy (%s): %w\n%s", last, err, tail(pc.Members[0].log))
	}
	return nil
}

// Switchover asks Patroni to hand the leader lock from the current leader to candidate, and
// returns once Patroni reports it done.
func (pc *PatroniCluster) Switchover(ctx context.Context, candidate string) error {
	leader, err := pc.Leader(ctx)
	if err != nil {
		return err
	}
	body := map[string]string{"leader": leader.Name, "candidate": candidate}
	return pc.call(ctx, http.MethodPost, leader.APIURL+"/switchover", body, nil)
}

// Stop ends the members (each stops its PostgreSQL), then etcd.
func (pc *PatroniCluster) Stop() {
	for _, m := range pc.Members {
		if m.proc != nil {
			_ = m.proc.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range pc.Members {
		m.proc.stop(20 * time.Second)
		killServer(filepath.Dir(m.DataDir)) // should Patroni have left its PostgreSQL behind
	}
	if pc.etcd != nil {
		_ = pc.etcd.cmd.Process.Signal(syscall.SIGTERM)
		pc.etcd.stop(10 * time.Second)
	}
}

// stop waits up to grace for a signalled process to exit, then kills it.
func (c *child) stop(grace time.Duration) {
	if c == nil {
		return
	}
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// call sends one REST request; a 2xx answer is decoded into out when out is not nil.
func (pc *PatroniCluster) call(ctx context.Context, method, url string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	resp, err := pc.rest.Do(req)
	if err != nil {
		return fmt.Errorf("patroni %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("patroni %s %s: HTTP %d: %s", method, url, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// tail is the end of a log file, for error messages.
func tail(name string) string {
	data, _ := os.ReadFile(name)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}
