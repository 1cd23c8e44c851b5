// Package config loads the API server's settings: a TOML file (unknown keys refused) overridden by
// environment variables, checked once so that the server refuses to start with one clear line rather
// than run insecurely.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// Environments. Production is the default: a forgotten ENVIRONMENT must not relax anything.
const (
	Development = "development"
	Staging     = "staging"
	Production  = "production"
)

// MinSecretBytes is the shortest JWT or registration secret accepted outside development.
const MinSecretBytes = 32

// Config is the whole server configuration. The TOML keys are the struct tags; the environment
// variables that override them are listed in Load.
type Config struct {
	Environment        string   `toml:"environment"`
	ListenAddr         string   `toml:"listen_addr"`
	ServerName         string   `toml:"server_name"`
	LogLevel           string   `toml:"log_level"`
	JWTSecretKey       string   `toml:"jwt_secret_key"`
	RegistrationSecret string   `toml:"registration_secret"`
	RateLimitPerMinute int      `toml:"rate_limit_per_minute"`
	CORSAllowedOrigins []string `toml:"cors_allowed_origins"`
	TrustedProxies     []string `toml:"trusted_proxies"`

	Database Database `toml:"database"`
	TLS      TLS      `toml:"tls"`
	Metrics  Metrics  `toml:"metrics"`
	Alerting Alerting `toml:"alerting"`
	Auth     Auth     `toml:"auth"`
	Limits   Limits   `toml:"limits"`

	// RemoteWrite lists the Prometheus remote-write receivers every ingested sample is forwarded to.
	RemoteWrite []RemoteWrite `toml:"remote_write"`

	// TrustedProxyNets is TrustedProxies parsed (a bare address becomes a /32 or /128).
	TrustedProxyNets []netip.Prefix `toml:"-"`
}

// Database configures the metrics store connection.
type Database struct {
	URL            string   `toml:"url"`
	MaxConns       int32    `toml:"max_conns"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	Retention      Duration `toml:"retention"`
	AutoMigrate    bool     `toml:"auto_migrate"`
}

// TLS configures HTTPS termination by the server itself.
type TLS struct {
	Enabled  bool   `toml:"enabled"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ClientCAFile turns on mutual TLS: client certificates are verified against it when given.
	ClientCAFile string `toml:"client_ca_file"`
	// RequireCollectorCert refuses registration and every collector request made without a
	// verified client certificate (needs ClientCAFile).
	RequireCollectorCert bool `toml:"require_collector_cert"`
}

// Metrics configures who may read the server's Prometheus metrics (/metrics): with a bearer token
// set, only a scrape that presents it; with a listen address set, /metrics is served there alone
// (plain HTTP, e.g. on a monitoring network) and not on the API's address. Both may be set.
type Metrics struct {
	ListenAddr      string `toml:"listen_addr"`
	BearerToken     string `toml:"bearer_token"`
	BearerTokenFile string `toml:"bearer_token_file"`
}

// Alerting configures the evaluation of the alert rules.
type Alerting struct {
	RulesFile          string   `toml:"rules_file"` // "" for the shipped rules (deploy/alerts.toml)
	EvaluationInterval Duration `toml:"evaluation_interval"`
	// AlertmanagerURLs are every Alertmanager to deliver to (each one, not a balancer in front).
	AlertmanagerURLs []string `toml:"alertmanager_urls"`
	ResendInterval   Duration `toml:"resend_interval"`
	ExternalURL      string   `toml:"external_url"`     // this API as people reach it, for generatorURL
	RunbookBaseURL   string   `toml:"runbook_base_url"` // prefixes a rule's relative runbook_url
}

// RemoteWrite is one Prometheus remote-write receiver (Prometheus with
// --web.enable-remote-write-receiver, Mimir, Thanos Receive, VictoriaMetrics): its URL, how to
// authenticate (headers, a bearer token, basic auth, a CA), and its queue.
type RemoteWrite struct {
	URL               string            `toml:"url"`
	Headers           map[string]string `toml:"headers"` // e.g. X-Scope-OrgID
	BearerToken       string            `toml:"bearer_token"`
	BearerTokenFile   string            `toml:"bearer_token_file"`
	BasicAuthUsername string            `toml:"basic_auth_username"`
	BasicAuthPassword string            `toml:"basic_auth_password"`
	CAFile            string            `toml:"ca_file"`
	Timeout           Duration          `toml:"timeout"`       // per request (default 30s)
	QueueSamples      int               `toml:"queue_samples"` // default 100000; beyond, samples are dropped and counted
	BatchSamples      int               `toml:"batch_samples"` // per request (default 2000)
}

// reservedRemoteWriteHeaders are set by the sender itself.
var reservedRemoteWriteHeaders = []string{"content-type", "content-encoding", "x-prometheus-remote-write-version", "user-agent"}

func (rw RemoteWrite) validate(i int) error {
	where := fmt.Sprintf("remote_write[%d]", i)
	if p, err := url.Parse(rw.URL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%s.url %q: want an http(s) URL", where, rw.URL)
	}
	for k := range rw.Headers {
		if slices.Contains(reservedRemoteWriteHeaders, strings.ToLower(k)) {
			return fmt.Errorf("%s.headers: %s is set by the sender", where, k)
		}
		if strings.EqualFold(k, "Authorization") && (rw.BearerToken != "" || rw.BearerTokenFile != "" || rw.BasicAuthUsername != "") {
			return fmt.Errorf("%s: an Authorization header and bearer_token or basic_auth exclude each other", where)
		}
	}
	auths := 0
	for _, set := range []bool{rw.BearerToken != "", rw.BearerTokenFile != "", rw.BasicAuthUsername != ""} {
		if set {
			auths++
		}
	}
	switch {
	case auths > 1:
		return fmt.Errorf("%s: bearer_token, bearer_token_file and basic_auth_username exclude each other", where)
	case rw.BasicAuthPassword != "" && rw.BasicAuthUsername == "":
		return fmt.Errorf("%s: basic_auth_password needs basic_auth_username", where)
	case rw.Timeout.D() < 0 || rw.Timeout.D() > 5*time.Minute:
		return fmt.Errorf("%s.timeout %s: want 0s (default 30s)..5m", where, rw.Timeout.D())
	case rw.QueueSamples < 0 || rw.QueueSamples > 10_000_000:
		return fmt.Errorf("%s.queue_samples %d: want 0 (default)..10000000", where, rw.QueueSamples)
	case rw.BatchSamples < 0 || rw.BatchSamples > 100_000:
		return fmt.Errorf("%s.batch_samples %d: want 0 (default)..100000", where, rw.BatchSamples)
	}
	return nil
}

// Auth configures token lifetimes and the login lock-out.
type Auth struct {
	AccessTokenTTL             Duration `toml:"access_token_ttl"`
	RefreshTokenTTL            Duration `toml:"refresh_token_ttl"`
	CollectorTokenTTL          Duration `toml:"collector_token_ttl"`
	LoginMaxFailures           int      `toml:"login_max_failures"` // per (account, address)
	LoginMaxFailuresPerAddress int      `toml:"login_max_failures_per_address"`
	LoginMaxFailuresPerAccount int      `toml:"login_max_failures_per_account"`
	LoginLockout               Duration `toml:"login_lockout"`
}

// Limits caps request sizes and the server's bookkeeping.
type Limits struct {
	PushMaxBytes             int64    `toml:"push_max_bytes"`
	PushMaxDecompressedBytes int64    `toml:"push_max_decompressed_bytes"`
	PushMaxSamples           int      `toml:"push_max_samples"`
	BodyMaxBytes             int64    `toml:"body_max_bytes"`
	PushDecodeTimeout        Duration `toml:"push_decode_timeout"`
	PushMemoryBytes          int64    `toml:"push_memory_bytes"`
	PushPerCollector         int      `toml:"push_per_collector"`
	StreamsPerPrincipal      int      `toml:"streams_per_principal"`
	StreamsMax               int      `toml:"streams_max"`
	MemoryLimitBytes         int64    `toml:"memory_limit_bytes"`
	GCPercent                int      `toml:"gc_percent"`
	RateLimitBuckets         int      `toml:"rate_limit_buckets"`
	ShutdownTimeout          Duration `toml:"shutdown_timeout"`
	// DrainDelay is how long a stopping server keeps serving with its readiness check failing, so
	// load balancers take it out of rotation before it stops accepting connections.
	DrainDelay Duration `toml:"drain_delay"`
	// RateLimitStoreTimeout bounds a request's wait for the store's shared rate-limit bucket; past
	// it, this server decides alone (see docs/api.md, rate limits).
	RateLimitStoreTimeout Duration `toml:"rate_limit_store_timeout"`
}

// Duration is a time.Duration written in TOML as a Go duration string ("15m", "168h"). It is a
// struct, not an integer type, so that a bare integer (nanoseconds? seconds?) is a decode error
// with its file:line rather than a guess.
type Duration struct{ d time.Duration }

// Dur wraps d.
func Dur(d time.Duration) Duration { return Duration{d} }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &tomlfile.BareValueError{Value: string(b),
			Msg: fmt.Sprintf("invalid duration %q (write it as a quoted string such as \"30s\", \"15m\", \"168h\")", b)}
	}
	d.d = v
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.d.String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return d.d }

// Default returns the configuration used for every key neither the file nor the environment sets.
func Default() Config {
	return Config{
		Environment:        Production,
		ListenAddr:         ":8080",
		LogLevel:           "info",
		RateLimitPerMinute: 100,
		Database: Database{
			MaxConns:       20,
			ConnectTimeout: Dur(30 * time.Second),
			Retention:      Dur(30 * 24 * time.Hour),
			AutoMigrate:    true,
		},
		Alerting: Alerting{EvaluationInterval: Dur(15 * time.Second), ResendInterval: Dur(time.Minute)},
		Auth: Auth{
			AccessTokenTTL:             Dur(15 * time.Minute),
			RefreshTokenTTL:            Dur(7 * 24 * time.Hour),
			CollectorTokenTTL:          Dur(365 * 24 * time.Hour),
			LoginMaxFailures:           5,
			LoginMaxFailuresPerAddress: 20,
			LoginMaxFailuresPerAccount: 100,
			LoginLockout:               Dur(15 * time.Minute),
		},
		Limits: Limits{
			PushMaxBytes:             8 << 20,
			PushMaxDecompressedBytes: 32 << 20,
			PushMaxSamples:           100_000,
			PushDecodeTimeout:        Dur(30 * time.Second),
			PushMemoryBytes:          64 << 20,
			PushPerCollector:         2,
			StreamsPerPrincipal:      8,
			StreamsMax:               1000,
			MemoryLimitBytes:         256 << 20,
			GCPercent:                50,
			BodyMaxBytes:             64 << 10,
			RateLimitBuckets:         100_000,
			ShutdownTimeout:          Dur(30 * time.Second),
			DrainDelay:               Dur(5 * time.Second),
			RateLimitStoreTimeout:    Dur(100 * time.Millisecond),
		},
	}
}

// Load reads the TOML file at path (none when path is empty), applies the environment (getenv is
// os.Getenv in production) and checks every value's form. It does not check what only serving needs
// (secrets, TLS policy): see ValidateServe.
func Load(path string, getenv func(string) string) (*Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := tomlfile.Decode(path, raw, &cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyEnv overrides the file with the documented environment variables; an empty variable is unset.
func (c *Config) applyEnv(getenv func(string) string) error {
	str := map[string]*string{
		"DATABASE_URL":              &c.Database.URL,
		"JWT_SECRET_KEY":            &c.JWTSecretKey,
		"REGISTRATION_SECRET":       &c.RegistrationSecret,
		"LISTEN_ADDR":               &c.ListenAddr,
		"SERVER_NAME":               &c.ServerName,
		"ENVIRONMENT":               &c.Environment,
		"TLS_CERT_FILE":             &c.TLS.CertFile,
		"TLS_KEY_FILE":              &c.TLS.KeyFile,
		"TLS_CLIENT_CA_FILE":        &c.TLS.ClientCAFile,
		"METRICS_LISTEN_ADDR":       &c.Metrics.ListenAddr,
		"METRICS_BEARER_TOKEN":      &c.Metrics.BearerToken,
		"METRICS_BEARER_TOKEN_FILE": &c.Metrics.BearerTokenFile,
		"ALERT_RULES_FILE":          &c.Alerting.RulesFile,
	}
	for name, dst := range str {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	if v := getenv("TLS_ENABLED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("TLS_ENABLED=%q: want true or false", v)
		}
		c.TLS.Enabled = b
	}
	if v := getenv("TLS_REQUIRE_COLLECTOR_CERT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("TLS_REQUIRE_COLLECTOR_CERT=%q: want true or false", v)
		}
		c.TLS.RequireCollectorCert = b
	}
	if v := getenv("RATE_LIMIT_PER_MINUTE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("RATE_LIMIT_PER_MINUTE=%q: want a whole number", v)
		}
		c.RateLimitPerMinute = n
	}
	if v := getenv("CORS_ALLOWED_ORIGINS"); v != "" {
		c.CORSAllowedOrigins = splitList(v)
	}
	if v := getenv("DRAIN_DELAY"); v != "" {
		if err := c.Limits.DrainDelay.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("DRAIN_DELAY: %w", err)
		}
	}
	if v := getenv("ALERT_EVALUATION_INTERVAL"); v != "" {
		if err := c.Alerting.EvaluationInterval.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("ALERT_EVALUATION_INTERVAL: %w", err)
		}
	}
	if v := getenv("ALERTMANAGER_URLS"); v != "" {
		c.Alerting.AlertmanagerURLs = splitList(v)
	}
	if v := getenv("REMOTE_WRITE_URLS"); v != "" {
		c.RemoteWrite = nil
		for _, u := range splitList(v) {
			c.RemoteWrite = append(c.RemoteWrite, RemoteWrite{URL: u})
		}
	}
	if v := getenv("TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = splitList(v)
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// check validates the form of every value and fills the parsed fields.
func (c *Config) check() error {
	switch c.Environment {
	case Development, Staging, Production:
	default:
		return fmt.Errorf("environment %q: want development, staging or production", c.Environment)
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("listen_addr %q: want host:port (e.g. :8080 or 127.0.0.1:8080)", c.ListenAddr)
	}
	if a := c.Metrics.ListenAddr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("metrics.listen_addr %q: want host:port (e.g. 127.0.0.1:9187)", a)
		}
	}
	if c.Metrics.BearerToken != "" && c.Metrics.BearerTokenFile != "" {
		return errors.New("metrics.bearer_token and metrics.bearer_token_file are mutually exclusive")
	}
	if f := c.Metrics.BearerTokenFile; f != "" {
		raw, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("metrics.bearer_token_file: %w", err)
		}
		c.Metrics.BearerToken, c.Metrics.BearerTokenFile = strings.TrimSpace(string(raw)), ""
		if c.Metrics.BearerToken == "" {
			return fmt.Errorf("metrics.bearer_token_file %s is empty", f)
		}
	}
	if t := c.Metrics.BearerToken; t != "" && len(t) < 16 {
		return fmt.Errorf("metrics.bearer_token is %d bytes: want at least 16 (generate one with: openssl rand -base64 32)", len(t))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.RateLimitPerMinute < 1 || c.RateLimitPerMinute > 1_000_000 {
		return fmt.Errorf("rate_limit_per_minute %d: want 1..1000000", c.RateLimitPerMinute)
	}
	for _, o := range c.CORSAllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	c.TrustedProxyNets = c.TrustedProxyNets[:0]
	for _, p := range c.TrustedProxies {
		pfx, err := parseProxy(p)
		if err != nil {
			return err
		}
		c.TrustedProxyNets = append(c.TrustedProxyNets, pfx)
	}
	if c.Database.MaxConns < 1 || c.Database.MaxConns > 1000 {
		return fmt.Errorf("database.max_conns %d: want 1..1000", c.Database.MaxConns)
	}
	positive := []struct {
		name string
		v    Duration
	}{
		{"database.connect_timeout", c.Database.ConnectTimeout},
		{"database.retention", c.Database.Retention},
		{"auth.access_token_ttl", c.Auth.AccessTokenTTL},
		{"auth.refresh_token_ttl", c.Auth.RefreshTokenTTL},
		{"auth.collector_token_ttl", c.Auth.CollectorTokenTTL},
		{"auth.login_lockout", c.Auth.LoginLockout},
		{"limits.shutdown_timeout", c.Limits.ShutdownTimeout},
		{"limits.push_decode_timeout", c.Limits.PushDecodeTimeout},
		{"alerting.evaluation_interval", c.Alerting.EvaluationInterval},
		{"alerting.resend_interval", c.Alerting.ResendInterval},
	}
	for _, p := range positive {
		if p.v.D() <= 0 {
			return fmt.Errorf("%s %s: want a positive duration", p.name, p.v.D())
		}
	}
	if d := c.Limits.DrainDelay; d.D() < 0 || d.D() > 5*time.Minute {
		return fmt.Errorf("limits.drain_delay %s: want 0s..5m", d.D())
	}
	if d := c.Limits.RateLimitStoreTimeout.D(); d < time.Millisecond || d > 10*time.Second {
		return fmt.Errorf("limits.rate_limit_store_timeout %s: want 1ms..10s", d)
	}
	for _, u := range append(slices.Clone(c.Alerting.AlertmanagerURLs), c.Alerting.ExternalURL, c.Alerting.RunbookBaseURL) {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("alerting: %q is not an http(s) URL", u)
		}
	}
	for i, rw := range c.RemoteWrite {
		if err := rw.validate(i); err != nil {
			return err
		}
	}
	if c.Alerting.EvaluationInterval.D() < 100*time.Millisecond {
		return fmt.Errorf("alerting.evaluation_interval %s: want at least 100ms", c.Alerting.EvaluationInterval.D())
	}
	if c.Database.Retention.D() < 24*time.Hour {
		return fmt.Errorf("database.retention %s: want at least 24h (partitions are whole days)", c.Database.Retention.D())
	}
	if c.Auth.LoginMaxFailures < 1 {
		return fmt.Errorf("auth.login_max_failures %d: want at least 1", c.Auth.LoginMaxFailures)
	}
	if a := c.Auth; a.LoginMaxFailuresPerAddress < a.LoginMaxFailures || a.LoginMaxFailuresPerAccount < a.LoginMaxFailures {
		return fmt.Errorf("auth.login_max_failures_per_address %d and auth.login_max_failures_per_account %d: want each at least login_max_failures (%d)",
			a.LoginMaxFailuresPerAddress, a.LoginMaxFailuresPerAccount, a.LoginMaxFailures)
	}
	l := c.Limits
	switch {
	case l.PushMaxBytes < 1<<10:
		return fmt.Errorf("limits.push_max_bytes %d: want at least 1024", l.PushMaxBytes)
	case l.PushMaxDecompressedBytes < l.PushMaxBytes:
		return fmt.Errorf("limits.push_max_decompressed_bytes %d: want at least push_max_bytes (%d)", l.PushMaxDecompressedBytes, l.PushMaxBytes)
	case l.PushMaxSamples < 1:
		return fmt.Errorf("limits.push_max_samples %d: want at least 1", l.PushMaxSamples)
	case l.PushMemoryBytes < l.PushMaxDecompressedBytes:
		return fmt.Errorf("limits.push_memory_bytes %d: want at least push_max_decompressed_bytes (%d), or the largest push could never be taken", l.PushMemoryBytes, l.PushMaxDecompressedBytes)
	case l.MemoryLimitBytes != 0 && l.MemoryLimitBytes < 2*l.PushMemoryBytes:
		return fmt.Errorf("limits.memory_limit_bytes %d: want 0 (Go's default) or at least twice push_memory_bytes (%d)", l.MemoryLimitBytes, l.PushMemoryBytes)
	case l.GCPercent != 0 && (l.GCPercent < 10 || l.GCPercent > 1000):
		return fmt.Errorf("limits.gc_percent %d: want 0 (Go's default, 100) or 10..1000", l.GCPercent)
	case l.PushPerCollector < 1:
		return fmt.Errorf("limits.push_per_collector %d: want at least 1", l.PushPerCollector)
	case l.StreamsPerPrincipal < 1 || l.StreamsMax < l.StreamsPerPrincipal:
		return fmt.Errorf("limits.streams_per_principal %d, limits.streams_max %d: want 1 <= streams_per_principal <= streams_max", l.StreamsPerPrincipal, l.StreamsMax)
	case l.BodyMaxBytes < 1<<10:
		return fmt.Errorf("limits.body_max_bytes %d: want at least 1024", l.BodyMaxBytes)
	case l.RateLimitBuckets < 100:
		return fmt.Errorf("limits.rate_limit_buckets %d: want at least 100", l.RateLimitBuckets)
	}
	return nil
}

// checkOrigin accepts exactly scheme://host[:port], the form browsers send in Origin.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || o != strings.ToLower(o) {
		return fmt.Errorf("cors_allowed_origins %q: want a lowercase origin like https://grafana.example.com (no path, no wildcard)", o)
	}
	return nil
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted_proxies %q: want a CIDR like 10.0.0.0/8 or an address", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted_proxies %q: want a CIDR like 10.0.0.0/8 or an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ValidateDatabase checks what the commands that only talk to the database need.
func (c *Config) ValidateDatabase() error {
	if c.Database.URL == "" {
		return errors.New("DATABASE_URL is not set (or database.url in the config file)")
	}
	return nil
}

// ValidateServe checks everything serving needs: the form of every value (again, for a Config built
// in code rather than by Load; TrustedProxyNets is re-derived from TrustedProxies) and the refusals
// that keep a misconfigured server from starting insecurely.
func (c *Config) ValidateServe() error {
	if err := c.check(); err != nil {
		return err
	}
	if err := c.ValidateDatabase(); err != nil {
		return err
	}
	secrets := []struct{ env, value string }{
		{"JWT_SECRET_KEY", c.JWTSecretKey},
		{"REGISTRATION_SECRET", c.RegistrationSecret},
	}
	for _, s := range secrets {
		if s.value == "" {
			return fmt.Errorf("%s is not set (generate one with: openssl rand -base64 32)", s.env)
		}
		if c.Environment != Development && len(s.value) < MinSecretBytes {
			return fmt.Errorf("%s is %d bytes; %s requires at least %d (generate one with: openssl rand -base64 32)",
				s.env, len(s.value), c.Environment, MinSecretBytes)
		}
	}
	if (c.TLS.ClientCAFile != "" || c.TLS.RequireCollectorCert) && !c.TLS.Enabled {
		return errors.New("TLS_CLIENT_CA_FILE and TLS_REQUIRE_COLLECTOR_CERT need TLS_ENABLED=true (mutual TLS is the server's own TLS)")
	}
	if c.TLS.RequireCollectorCert && c.TLS.ClientCAFile == "" {
		return errors.New("TLS_REQUIRE_COLLECTOR_CERT=true needs TLS_CLIENT_CA_FILE, the CA collector certificates chain to")
	}
	if c.TLS.Enabled {
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			return errors.New("TLS_ENABLED=true needs both TLS_CERT_FILE and TLS_KEY_FILE")
		}
		return nil
	}
	if len(c.TrustedProxyNets) > 0 {
		return nil // plain HTTP behind the TLS-terminating proxy named in TRUSTED_PROXIES
	}
	if c.Environment == Production {
		return errors.New("production refuses plain HTTP: set TLS_ENABLED=true with TLS_CERT_FILE and TLS_KEY_FILE, or TRUSTED_PROXIES to the TLS-terminating proxy")
	}
	if !IsLoopback(c.ListenAddr) {
		return fmt.Errorf("%s allows plain HTTP on loopback only, not LISTEN_ADDR=%s: listen on 127.0.0.1 or [::1], set TLS_ENABLED=true, or set TRUSTED_PROXIES", c.Environment, c.ListenAddr)
	}
	return nil
}

// IsLoopback reports whether a listen address binds only loopback interfaces.
func IsLoopback(listenAddr string) bool {
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
