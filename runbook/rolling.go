package runbook

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

// Server is one API server of a rolling step or an api-servers check: a name the environment's
// commands understand (a host, a unit instance) and the URL that reaches that server alone.
type Server struct {
	Name string
	URL  string
}

// defaultSettle is how long a rolling step waits after a server is ready before it takes the next
// one down: a load balancer needs a few probes (haproxy's rise 2 × inter 1s) to send it traffic.
const defaultSettle = 5 * time.Second

// readyPoll is how often a rolling step asks a restarted server whether it is ready.
const readyPoll = 250 * time.Millisecond

// splitList splits a list written with commas, spaces or both ("a,b", "a b", "a, b").
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

var serverNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ParseServers reads a servers list: NAME=URL entries separated by commas or whitespace, e.g.
// "api-1=https://10.0.0.11:8080,api-2=https://10.0.0.12:8080".
func ParseServers(list string) ([]Server, error) {
	var out []Server
	seen := map[string]bool{}
	for _, f := range splitList(list) {
		name, raw, ok := strings.Cut(f, "=")
		if !ok || !serverNameRe.MatchString(name) {
			return nil, fmt.Errorf("servers: %q: want NAME=URL with NAME of letters, digits, '.', '_' and '-'", f)
		}
		u, err := url.Parse(raw)
		switch {
		case err == nil && u.User != nil:
			// Never echoed: it holds a secret.
			return nil, fmt.Errorf("servers: %s: the URL holds credentials; want an http(s) URL without credentials", name)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return nil, fmt.Errorf("servers: %s: %q is not an http(s) URL", name, raw)
		}
		if seen[name] {
			return nil, fmt.Errorf("servers: %s named twice", name)
		}
		seen[name] = true
		out = append(out, Server{Name: name, URL: strings.TrimRight(raw, "/")})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("servers: the list is empty")
	}
	return out, nil
}

// servers expands and parses a step's servers, refusing remote ones in a loopback-only environment.
func (e *Engine) servers(s *Step) ([]Server, error) {
	list, err := e.env.expandStep(s.Servers)
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	servers, err := ParseServers(list)
	if err != nil {
		return nil, err
	}
	if e.env.LoopbackOnly {
		for _, srv := range servers {
			if err := checkLoopbackURL(srv.URL); err != nil {
				return nil, fmt.Errorf("environment %s is loopback-only: %s: %w", e.env.Name, srv.Name, err)
			}
		}
	}
	return servers, nil
}

func (e *Engine) serverClient(srv Server) (*client.Client, error) {
	return client.New(client.Options{BaseURL: srv.URL, CAFile: e.env.CAFile, Timeout: 5 * time.Second,
		UserAgent: "pgactl-runbook", RateLimitRetries: rateLimitWaits})
}

// runRolling upgrades the servers one at a time: the step's commands run with SERVER_NAME and
// SERVER_URL set (drain, replace, start: e.g. `systemctl restart`, which sends SIGTERM, and the API
// drains itself), then the server must come back ready as a new process before, after settle, the
// next one goes. A server that does not come back stops the step with the others untouched.
func (e *Engine) runRolling(ctx context.Context, runID string, s *Step, out *lineWriter) error {
	servers, err := e.servers(s)
	if err != nil {
		return err
	}
	settle := defaultSettle
	if s.Settle.D() != 0 {
		settle = s.Settle.D()
	}
	for i, srv := range servers {
		c, err := e.serverClient(srv)
		if err != nil {
			return err
		}
		before, err := c.Health(ctx)
		if err != nil {
			out.println(fmt.Sprintf("[%d/%d] %s: not answering before the upgrade (%v); upgrading anyway", i+1, len(servers), srv.Name, err))
		} else {
			out.println(fmt.Sprintf("[%d/%d] %s: version %s, up %ds; upgrading", i+1, len(servers), srv.Name, orDash(before.Version), before.Uptime))
		}
		began := time.Now()
		code, err := e.runCommand(ctx, runID, s, map[string]string{"SERVER_NAME": srv.Name, "SERVER_URL": srv.URL}, out)
		if err != nil {
			return fmt.Errorf("%s: %w (exit %d); the servers after it were not touched", srv.Name, err, code)
		}
		h, err := e.waitRestarted(ctx, c, began)
		if err != nil {
			return fmt.Errorf("%s: %w; the servers after it were not touched", srv.Name, err)
		}
		out.println(fmt.Sprintf("[%d/%d] %s: ready %.1fs after the command began, version %s", i+1, len(servers), srv.Name,
			time.Since(began).Seconds(), orDash(h.Version)))
		if i < len(servers)-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(settle):
			}
		}
	}
	return nil
}

// waitRestarted waits until the server answers ready as a process started after began (its
// uptime says so), so that a server still draining, or one the command never restarted, is not
// taken for an upgraded one.
func (e *Engine) waitRestarted(ctx context.Context, c *client.Client, began time.Time) (api.Health, error) {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return api.Health{}, fmt.Errorf("not ready as a restarted process (last: %s): %w", orDash(last), ctx.Err())
		case <-tick.C:
		}
		p, status, err := c.Ready(ctx)
		switch {
		case err != nil:
			last = err.Error()
			continue
		case status != http.StatusOK:
			last = "readiness " + p.Status
			continue
		}
		got, err := c.Health(ctx)
		if err != nil {
			last = err.Error()
			continue
		}
		if up := time.Duration(got.Uptime) * time.Second; time.Since(began) < up {
			last = fmt.Sprintf("still the process from before the command (up %ds)", got.Uptime)
			continue
		}
		return got, nil
	}
}

// checkAPIServers: every server answers ready and healthy on its own URL, and, with url, the load
// balancer in front of them answers healthy too.
func (e *Engine) checkAPIServers(ctx context.Context, s *Step, out *lineWriter) error {
	servers, err := e.servers(s)
	if err != nil {
		return err
	}
	var bad []string
	for _, srv := range servers {
		c, err := e.serverClient(srv)
		if err != nil {
			return err
		}
		p, status, rerr := c.Ready(ctx)
		h, herr := c.Health(ctx)
		switch {
		case rerr != nil:
			bad = append(bad, srv.Name)
			out.println(fmt.Sprintf("%s %s: %v", srv.Name, srv.URL, rerr))
		case status != http.StatusOK:
			bad = append(bad, srv.Name)
			out.println(fmt.Sprintf("%s %s: not ready (%s: %s)", srv.Name, srv.URL, p.Status, p.Reason))
		case herr != nil || h.Status != "healthy":
			bad = append(bad, srv.Name)
			out.println(fmt.Sprintf("%s %s: ready, health %s %v", srv.Name, srv.URL, orDash(h.Status), herr))
		default:
			out.println(fmt.Sprintf("%s %s: ready, healthy, version %s, up %ds", srv.Name, srv.URL, orDash(h.Version), h.Uptime))
		}
	}
	if s.URL != "" {
		if err := e.checkHealth(ctx, s, out); err != nil {
			return fmt.Errorf("through the load balancer: %w", err)
		}
	}
	if len(bad) > 0 {
		return classifyHTTP(fmt.Errorf("%d of %d API servers not ready and healthy: %s", len(bad), len(servers), strings.Join(bad, ", ")))
	}
	return nil
}
