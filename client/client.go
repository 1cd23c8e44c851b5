// Package client is the typed client of the pgAnalytics HTTP API (/api/v1), built on resty. It is used
// by the collector (register, push), the console and the pgactl commands. It also resolves pgactl's
// credentials from flags, environment and a contexts file (see context.go).
package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
)

// APIPrefix is the path every API endpoint lives under.
const APIPrefix = "/api/v1"

const (
	defaultTimeout = 10 * time.Second
	// maxResponseBytes caps what the client reads of one answer, so a hostile or broken server cannot
	// exhaust memory. Metric queries are the largest legitimate answers.
	maxResponseBytes = 64 << 20
	defaultUserAgent = "pganalytics-client"
	// defaultStreamIdle is four of the server's 15 s heartbeats.
	defaultStreamIdle = 60 * time.Second
	// maxRateLimitWait is the longest Retry-After a call waits out; a longer one is returned at once.
	maxRateLimitWait = 30 * time.Second
)

// Options configures a Client.
type Options struct {
	BaseURL            string // e.g. http://127.0.0.1:8080 (the client adds /api/v1)
	Token              string // bearer token (user access token or collector token)
	CAFile             string // PEM bundle trusted instead of the system roots
	CertFile, KeyFile  string // client certificate, optional
	InsecureSkipVerify bool
	Timeout            time.Duration // per request, default 10s; the SSE stream has no overall timeout
	UserAgent          string
	// RateLimitRetries is how many 429 answers (with a Retry-After of at most 30 s) one call waits out
	// before it returns the 429. Zero, the default, returns the first one.
	RateLimitRetries int
}

// Client talks to one pgAnalytics API server. It is safe for concurrent use; WithToken returns a
// copy sharing the connection pool.
type Client struct {
	baseURL   string // scheme://host[:port][/prefix], no trailing slash, without /api/v1
	token     string
	userAgent string
	rest      *resty.Client // requests with the per-request timeout
	stream    *resty.Client // long-lived requests (SSE): same transport, no overall timeout
	// streamIdle ends an event stream that delivered nothing, not even a heartbeat, for this long:
	// a connection that died silently must not hang a watcher forever.
	streamIdle       time.Duration
	rateLimitRetries int
}

// New validates opts and builds a Client. It does no I/O besides reading the CA and certificate files.
func New(opts Options) (*Client, error) {
	base, err := normalizeBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := buildTLSConfig(opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	transport.ResponseHeaderTimeout = timeout
	transport.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	// Redirects are answers to inspect (a smoke check must see them), never followed silently with a
	// bearer token attached.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	newRest := func(overall time.Duration) *resty.Client {
		rc := resty.NewWithClient(&http.Client{Transport: transport, CheckRedirect: noRedirect, Timeout: overall})
		rc.SetBaseURL(base)
		rc.SetLogger(discardLogger{})
		rc.SetDisableWarn(true)
		rc.SetResponseBodyLimit(maxResponseBytes)
		return rc
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	return &Client{
		baseURL:    base,
		token:      opts.Token,
		userAgent:  ua,
		rest:       newRest(timeout),
		stream:     newRest(0),
		streamIdle: defaultStreamIdle,

		rateLimitRetries: max(opts.RateLimitRetries, 0),
	}, nil
}

// WithToken returns a shallow copy of c that sends another bearer token (empty: none).
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// WithRateLimitRetries returns a copy that waits out up to n 429 answers per call (see Options).
func (c *Client) WithRateLimitRetries(n int) *Client {
	cp := *c
	cp.rateLimitRetries = max(n, 0)
	return &cp
}

// BaseURL is the server's base URL as configured, without /api/v1 and without a trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

func normalizeBaseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("client: base URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: base URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("client: base URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: base URL %q: no host", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("client: base URL %q: credentials in the URL are not supported", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("client: base URL %q: no query or fragment allowed", raw)
	}
	path := strings.TrimRight(u.Path, "/")
	// Accept a URL that already names the API prefix; the client adds it itself.
	path = strings.TrimSuffix(path, APIPrefix)
	return u.Scheme + "://" + u.Host + path, nil
}

func buildTLSConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipVerify} //nolint:gosec // explicit operator choice
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case opts.CertFile != "" && opts.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case opts.CertFile != "" || opts.KeyFile != "":
		return nil, errors.New("client: a client certificate needs both CertFile and KeyFile")
	}
	return cfg, nil
}

type discardLogger struct{}

func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any) {}

// TLSConfig returns a copy of the TLS settings the client verifies servers with (roots, client
// certificate, InsecureSkipVerify), for probes that dial themselves, such as a certificate check.
func (c *Client) TLSConfig() *tls.Config {
	if t, ok := c.rest.GetClient().Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.Clone()
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}
