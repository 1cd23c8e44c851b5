package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pganalytics/pganalytics/deploy"
)

// haDrainDelay is the API servers' drain in the HA topology: longer than haproxy needs to take a
// server out of rotation (fall 2 × inter 1s in deploy/haproxy/haproxy.cfg).
const haDrainDelay = "5s"

// startAPIServers starts the API, or with Options.HA two API servers, from a copy of the binary in
// the demo's bin/ (what a rolling upgrade replaces), each kept up (restarted when it exits, as
// systemd would) and waited for until healthy. It returns the servers as NAME=URL entries.
func (st *Stack) startAPIServers(ctx context.Context, o Options, scheme, apiBin string, apiEnv []string, step func(string, ...any)) (string, error) {
	runBin := filepath.Join(st.dir, "bin", "pganalytics-api")
	if err := copyExecutable(apiBin, runBin); err != nil {
		return "", err
	}
	type server struct{ name, addr, log string }
	servers := []server{{ProcessAPI, o.APIAddr, "api.log"}}
	if o.HA {
		servers = nil
		for _, name := range []string{ProcessAPI1, ProcessAPI2} {
			addr, err := freeLoopbackAddr(o.APIAddr)
			if err != nil {
				return "", err
			}
			servers = append(servers, server{name, addr, name + ".log"})
		}
	}
	var list []string
	for _, srv := range servers {
		env := append(slices.Clone(apiEnv), "LISTEN_ADDR="+srv.addr, "SERVER_NAME="+srv.name)
		if o.HA {
			// haproxy on loopback is the trusted proxy: rate limits and the audit log see the client.
			env = append(env, "DRAIN_DELAY="+haDrainDelay, "TRUSTED_PROXIES=127.0.0.1")
		}
		env = append(env, o.APIEnv...) // the caller's last: they win
		url := scheme + "://" + srv.addr
		step("starting the API server %s on %s", srv.name, url)
		p, err := st.spawnProcess(&process{name: srv.name, env: env, logFile: filepath.Join(st.dir, srv.log),
			pidFile: filepath.Join(st.dir, srv.name+".pid"), bin: runBin, args: []string{"serve"}, keepUp: true,
			healthURL: url + "/api/v1/health"})
		if err != nil {
			return "", err
		}
		if err := st.waitHealthy(ctx, p); err != nil {
			return "", err
		}
		list = append(list, srv.name+"="+url)
	}
	return strings.Join(list, ","), nil // no space: demo.env is sourced by shells
}

// startHAProxy runs haproxy on Options.APIAddr with the shipped configuration in front of the two
// API servers and returns its statistics page's URL once it routes to a healthy server.
func (st *Stack) startHAProxy(ctx context.Context, o Options) (string, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return "", fmt.Errorf("the HA topology needs haproxy (make deps installs it): %w", err)
	}
	cfg := filepath.Join(st.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, deploy.HAProxyConfig, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", cfg, err)
	}
	stats, err := freeLoopbackAddr(o.APIAddr)
	if err != nil {
		return "", err
	}
	addrOf := func(name string) string {
		p, _ := st.process(name)
		return strings.TrimSuffix(strings.TrimPrefix(p.healthURL, "https://"), "/api/v1/health")
	}
	env := []string{
		"PGA_LB_BIND=" + o.APIAddr, "PGA_LB_CERT=" + st.tls.api.Bundle, "PGA_LB_STATS=" + stats,
		"PGA_API_CA=" + st.tls.ca.CertFile, "PGA_API_TLS_NAME=localhost",
		"PGA_API_1=" + addrOf(ProcessAPI1), "PGA_API_2=" + addrOf(ProcessAPI2),
	}
	// -db: in the foreground, logging to the demo's haproxy.log; -W would fork a master.
	p, err := st.spawnProcess(&process{name: ProcessHAProxy, env: env, logFile: filepath.Join(st.dir, "haproxy.log"),
		bin: bin, args: []string{"-db", "-f", cfg}, healthURL: "https://" + o.APIAddr + "/api/v1/health"})
	if err != nil {
		return "", err
	}
	return "http://" + stats + "/", st.waitHealthy(ctx, p)
}

// freeLoopbackAddr is a free port on the loopback address of apiAddr's host, never apiAddr's
// own port (free too until the API binds it).
func freeLoopbackAddr(apiAddr string) (string, error) {
	_, apiPort, _ := net.SplitHostPort(apiAddr)
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, port, _ := net.SplitHostPort(addr); port != apiPort {
			return addr, nil
		}
	}
	return "", fmt.Errorf("find a free port: only %s came back", apiAddr)
}

// copyExecutable copies src to dst (mode 0755), creating dst's directory.
func copyExecutable(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	_, err = io.Copy(out, in)
	if err = errors.Join(err, out.Close()); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
