// Package patroni reads a member's Patroni REST API (/patroni, /cluster, /history): the member's own
// role, state and timeline, the cluster's members, leader and maintenance mode, and the failover
// history. Only GETs, which Patroni serves without authentication unless told otherwise; a URL's
// user and password, when given, are sent as basic auth and never logged.
package patroni

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
)

// maxBody bounds one response: /cluster of a large cluster is a few KiB, /history a few per entry.
const maxBody = 1 << 20

// Client reads one member's REST API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
}

// New checks rawURL (http or https, a host, no query) and prepares a client; caFile, when set, is
// the PEM bundle that signs an https API's certificate.
func New(rawURL, caFile string) (*Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("patroni url: %w", err)
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("patroni ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("patroni ca file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: u, http: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// ParseURL accepts an http(s) URL with a host and an optional path prefix.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.Unwrap(err) // url.Error repeats the URL, password included
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("%q: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q: no query or fragment expected", u.Redacted())
	}
	return u, nil
}

// Report is one reading of the REST API.
type Report struct {
	SystemIdentifier string
	Self             api.PatroniMember
	Cluster          api.PatroniCluster // ReportedBy is left to the caller
	Switches         int                // entries in /history (Cluster.History keeps the latest)
}

// Read asks /patroni, /cluster and /history at once. pgAddress (host:port) is the PostgreSQL
// address of the member, used to find it in /cluster when Patroni does not name it.
func (c *Client) Read(ctx context.Context, pgAddress string) (*Report, error) {
	var (
		self    memberStatus
		cluster clusterStatus
		history [][]any
		wg      sync.WaitGroup
		errs    [3]error
	)
	wg.Go(func() { errs[0] = c.get(ctx, "patroni", &self) })
	wg.Go(func() { errs[1] = c.get(ctx, "cluster", &cluster) })
	wg.Go(func() { errs[2] = c.get(ctx, "history", &history) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	h, p := apiEndpoint(c.base.String())
	return assemble(self, cluster, history, net.JoinHostPort(h, strconv.Itoa(p)), pgAddress), nil
}

// get decodes one endpoint. /patroni answers 503 on a member that is not running, with the same
// body, so any status with a JSON body counts.
func (c *Client) get(ctx context.Context, endpoint string, into any) error {
	u := c.base.JoinPath(endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("patroni %s: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a password
		}
		return fmt.Errorf("patroni /%s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("patroni /%s: read: %w", endpoint, err)
	case len(body) > maxBody:
		return fmt.Errorf("patroni /%s: response larger than %d bytes", endpoint, maxBody)
	case resp.StatusCode != http.StatusOK && (endpoint != "patroni" || resp.StatusCode != http.StatusServiceUnavailable):
		return fmt.Errorf("patroni /%s: HTTP %d", endpoint, resp.StatusCode)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("patroni /%s: not the JSON Patroni answers: %w", endpoint, err)
	}
	return nil
}

// memberStatus is /patroni.
type memberStatus struct {
	State          string `json:"state"`
	Role           string `json:"role"` // master or primary (3.1+), replica, standby_leader
	Timeline       int64  `json:"timeline"`
	Pause          bool   `json:"pause"`
	PendingRestart bool   `json:"pending_restart"`
	SystemID       string `json:"database_system_identifier"`
	Patroni        struct {
		Version string `json:"version"`
		Scope   string `json:"scope"`
		Name    string `json:"name"` // 3.1+
	} `json:"patroni"`
}

// clusterStatus is /cluster.
type clusterStatus struct {
	Scope   string `json:"scope"`
	Pause   bool   `json:"pause"`
	Members []struct {
		Name           string          `json:"name"`
		Role           string          `json:"role"`
		State          string          `json:"state"`
		APIURL         string          `json:"api_url"`
		Host           string          `json:"host"`
		Port           int             `json:"port"`
		Timeline       int64           `json:"timeline"`
		Lag            json.RawMessage `json:"lag"` // bytes, or "unknown"
		PendingRestart bool            `json:"pending_restart"`
	} `json:"members"`
}

// assemble joins the three answers into a Report, clipping texts and lists to the snapshot's bounds.
func assemble(self memberStatus, cl clusterStatus, history [][]any, apiAddress, pgAddress string) *Report {
	r := &Report{SystemIdentifier: self.SystemID}
	r.Cluster.Scope = clip(firstOf(cl.Scope, self.Patroni.Scope))
	r.Cluster.Version = clip(self.Patroni.Version)
	r.Cluster.Paused = cl.Pause || self.Pause
	r.Cluster.Members = []api.PatroniMember{}
	selfName := self.Patroni.Name
	for _, m := range cl.Members {
		if len(r.Cluster.Members) == api.MaxPatroniMembers {
			break
		}
		pm := api.PatroniMember{Name: clip(m.Name), Role: clipTo(m.Role, api.MaxStateBytes),
			State: clipTo(m.State, api.MaxStateBytes), Host: clipTo(m.Host, api.MaxHostBytes),
			Port: m.Port, Timeline: max(m.Timeline, 0), PendingRestart: m.PendingRestart}
		if lag, err := strconv.ParseInt(string(m.Lag), 10, 64); err == nil && lag >= 0 {
			pm.LagBytes = &lag // a number; "unknown" (or anything else) leaves it nil
		}
		if pm.Port < 0 || pm.Port > 65535 {
			pm.Port = 0
		}
		if pm.Role == "leader" || pm.Role == "standby_leader" {
			r.Cluster.Leader = pm.Name
		}
		if h, p := apiEndpoint(m.APIURL); selfName == "" && (topology.SameEndpoint(apiAddress, h, p) || topology.SameEndpoint(pgAddress, m.Host, m.Port)) {
			selfName = m.Name
		}
		r.Cluster.Members = append(r.Cluster.Members, pm)
	}
	r.Self = api.PatroniMember{Name: clip(selfName), State: clipTo(self.State, api.MaxStateBytes), Timeline: max(self.Timeline, 0),
		PendingRestart: self.PendingRestart, Role: clipTo(memberRole(self.Role), api.MaxStateBytes)}
	for _, m := range r.Cluster.Members {
		if m.Name == selfName && selfName != "" {
			r.Self.Role, r.Self.Host, r.Self.Port, r.Self.LagBytes = m.Role, m.Host, m.Port, m.LagBytes
		}
	}
	r.Cluster.History = parseHistory(history)
	r.Switches = len(history)
	return r
}

// memberRole maps /patroni's role to the names /cluster uses.
func memberRole(role string) string {
	switch role {
	case "master", "primary":
		return "leader"
	}
	return role
}

// parseHistory reads /history entries, [timeline, lsn, reason, timestamp, new leader], the last
// three optional (older Patroni wrote fewer); malformed entries are skipped.
func parseHistory(entries [][]any) []api.PatroniSwitch {
	out := []api.PatroniSwitch{}
	for _, e := range entries[max(0, len(entries)-api.MaxPatroniHistory):] {
		if len(e) < 2 {
			continue
		}
		tl, ok1 := number(e[0])
		lsn, ok2 := number(e[1])
		if !ok1 || !ok2 || tl < 0 || lsn < 0 {
			continue
		}
		sw := api.PatroniSwitch{Timeline: tl, LSN: fmt.Sprintf("%X/%X", uint64(lsn)>>32, uint64(lsn)&0xFFFFFFFF)}
		if len(e) > 2 {
			sw.Reason = clip(text(e[2]))
		}
		if len(e) > 3 {
			if t, err := time.Parse(time.RFC3339Nano, text(e[3])); err == nil {
				t = t.UTC()
				sw.At = &t
			}
		}
		if len(e) > 4 {
			sw.NewLeader = clip(text(e[4]))
		}
		out = append(out, sw)
	}
	return out
}

func number(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func text(v any) string {
	s, _ := v.(string)
	return s
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clip bounds a text from Patroni to what a snapshot takes (cut on a rune boundary, no NULs).
func clip(s string) string { return clipTo(s, api.MaxPatroniText) }

func clipTo(s string, n int) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// apiEndpoint is an api_url's host and port (the scheme's port when none is written).
func apiEndpoint(raw string) (string, int) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, _ := strconv.Atoi(port)
	return u.Hostname(), p
}
