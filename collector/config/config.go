// Package config loads collector.toml: plain structs, defaults, validation. Unknown keys and syntax
// errors are reported with their line and column.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/collector/patroni"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// MaxFileBytes bounds the configuration file; a real one is a few kilobytes.
const MaxFileBytes = 1 << 20

// Defaults applied to keys the file leaves out.
const (
	DefaultInterval         = 10 * time.Second
	DefaultAPITimeout       = 10 * time.Second
	DefaultInstanceTimeout  = 5 * time.Second
	DefaultTokenFile        = "/var/lib/pganalytics/collector.token"
	DefaultSpoolDir         = "/var/lib/pganalytics/spool"
	DefaultMemoryMaxBytes   = 8 << 20
	DefaultDiskMaxBytes     = 256 << 20
	DefaultRejectedMaxBytes = 64 << 20
	minInterval             = time.Second
	minBufferBytes          = 64 << 10
)

// Config is collector.toml.
type Config struct {
	Collector     Collector     `toml:"collector"`
	API           API           `toml:"api"`
	Postgres      []Postgres    `toml:"postgres"`
	PgReplication PgReplication `toml:"pg_replication"`
	Buffer        Buffer        `toml:"buffer"`
}

// Collector identifies this collector and sets its cycle.
type Collector struct {
	Name      string   `toml:"name"`       // default: the machine's hostname
	Hostname  string   `toml:"hostname"`   // default: the machine's hostname
	Interval  Duration `toml:"interval"`   // one collection cycle (and push) every interval
	LogLevel  string   `toml:"log_level"`  // debug | info | warn | error
	LogFormat string   `toml:"log_format"` // text | json
}

// API is where batches go.
type API struct {
	URL                string   `toml:"url"`
	TokenFile          string   `toml:"token_file"`
	CAFile             string   `toml:"ca_file"`
	CertFile           string   `toml:"cert_file"`
	KeyFile            string   `toml:"key_file"`
	InsecureSkipVerify bool     `toml:"insecure_skip_verify"`
	Timeout            Duration `toml:"timeout"`
}

// Postgres is one monitored instance: either DSN, or Host/Port/User/DBName, plus an optional
// PasswordFile read at every (re)connection so a rotated password is picked up.
type Postgres struct {
	Name         string   `toml:"name"`
	Cluster      string   `toml:"cluster"` // the cluster's name in the API; default: its primary's name
	DSN          string   `toml:"dsn"`
	Host         string   `toml:"host"`
	Port         int      `toml:"port"`
	User         string   `toml:"user"`
	DBName       string   `toml:"dbname"`
	SSLMode      string   `toml:"sslmode"`
	SSLRootCert  string   `toml:"sslrootcert"`
	PasswordFile string   `toml:"password_file"`
	Timeout      Duration `toml:"timeout"` // per cycle: connect + every query of this instance
	// PatroniURL is the member's Patroni REST API (http(s)://host:8008); when set, /patroni,
	// /cluster and /history are read every cycle, within the same timeout.
	PatroniURL    string `toml:"patroni_url"`
	PatroniCAFile string `toml:"patroni_ca_file"` // PEM bundle for an https Patroni API
}

// PgReplication switches the replication families (pg_stat_replication, slots, WAL receiver, standby
// replay, recovery conflicts, subscriptions) and sets how often they run.
type PgReplication struct {
	Enabled  bool     `toml:"enabled"`
	Interval Duration `toml:"interval"` // a multiple of collector.interval; default: collector.interval
}

// Buffer bounds what is kept while the API is away.
type Buffer struct {
	SpoolDir         string `toml:"spool_dir"`
	MemoryMaxBytes   int64  `toml:"memory_max_bytes"`
	DiskMaxBytes     int64  `toml:"disk_max_bytes"`
	RejectedMaxBytes int64  `toml:"rejected_max_bytes"`
}

// Duration is a time.Duration written as a Go duration string ("10s", "1m30s"). It is a struct so
// that a bare integer (nanoseconds? seconds?) is a decode error rather than a guess.
type Duration struct{ d time.Duration }

// Dur wraps d.
func Dur(d time.Duration) Duration { return Duration{d} }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &tomlfile.BareValueError{Value: string(b),
			Msg: fmt.Sprintf("invalid duration %s: write durations as quoted strings such as \"10s\" or \"1m\"", strconv.Quote(string(b)))}
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.d = v
	return nil
}

// MarshalText writes the duration back as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.d.String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return d.d }

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileBytes)
	}
	return Parse(path, data, os.Hostname)
}

// Parse decodes data (named path in messages), fills defaults and validates. hostname supplies the
// default collector name and hostname.
func Parse(path string, data []byte, hostname func() (string, error)) (*Config, error) {
	// Defaults for keys whose zero value is meaningful are set before decoding, so that an explicit
	// "enabled = false" or "memory_max_bytes = 0" in the file is kept.
	cfg := &Config{
		PgReplication: PgReplication{Enabled: true},
		Buffer: Buffer{
			MemoryMaxBytes:   DefaultMemoryMaxBytes,
			DiskMaxBytes:     DefaultDiskMaxBytes,
			RejectedMaxBytes: DefaultRejectedMaxBytes,
		},
	}
	if err := tomlfile.Decode(path, data, cfg); err != nil {
		return nil, err
	}
	if err := cfg.applyDefaults(hostname); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func (c *Config) applyDefaults(hostname func() (string, error)) error {
	if c.Collector.Hostname == "" || c.Collector.Name == "" {
		h, err := hostname()
		if err != nil {
			return fmt.Errorf("collector.name: not set and the hostname is unknown: %w", err)
		}
		if c.Collector.Hostname == "" {
			c.Collector.Hostname = h
		}
		if c.Collector.Name == "" {
			c.Collector.Name = h
		}
	}
	if c.Collector.Interval.D() == 0 {
		c.Collector.Interval = Dur(DefaultInterval)
	}
	if c.Collector.LogLevel == "" {
		c.Collector.LogLevel = "info"
	}
	if c.Collector.LogFormat == "" {
		c.Collector.LogFormat = "text"
	}
	if c.API.TokenFile == "" {
		c.API.TokenFile = DefaultTokenFile
	}
	if c.API.Timeout.D() == 0 {
		c.API.Timeout = Dur(DefaultAPITimeout)
	}
	for i := range c.Postgres {
		if c.Postgres[i].Timeout.D() == 0 {
			c.Postgres[i].Timeout = Dur(min(DefaultInstanceTimeout, c.Collector.Interval.D()/2))
		}
	}
	if c.PgReplication.Interval.D() == 0 {
		c.PgReplication.Interval = c.Collector.Interval
	}
	if c.Buffer.SpoolDir == "" {
		c.Buffer.SpoolDir = DefaultSpoolDir
	}
	return nil
}

var instanceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$`)

func (c *Config) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	interval := c.Collector.Interval.D()
	if interval < minInterval {
		add("collector.interval: %s is below the minimum %s", interval, minInterval)
	}
	switch c.Collector.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("collector.log_level: %q is not one of debug, info, warn, error", c.Collector.LogLevel)
	}
	switch c.Collector.LogFormat {
	case "text", "json":
	default:
		add("collector.log_format: %q is not one of text, json", c.Collector.LogFormat)
	}
	if c.API.URL == "" {
		add("api.url: required")
	} else if u, err := url.Parse(c.API.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("api.url: %q is not an http(s) URL", c.API.URL)
	}
	if (c.API.CertFile == "") != (c.API.KeyFile == "") {
		add("api.cert_file and api.key_file: set both or neither")
	}
	if len(c.Postgres) == 0 {
		add("postgres: at least one [[postgres]] table is required")
	}
	if len(c.Postgres) > api.MaxSnapshotInstances {
		add("postgres: %d instances, at most %d per collector (run another collector for the rest)", len(c.Postgres), api.MaxSnapshotInstances)
	}
	seen := map[string]bool{}
	for i := range c.Postgres {
		p := &c.Postgres[i]
		where := fmt.Sprintf("postgres[%d]", i)
		if p.Name != "" {
			where = fmt.Sprintf("postgres[%d] (%s)", i, p.Name)
		}
		if !instanceNameRE.MatchString(p.Name) {
			add("%s.name: %q must be 1-63 letters, digits, '_', '.', ':' or '-'", where, p.Name)
		}
		if seen[p.Name] {
			add("%s.name: %q is used twice", where, p.Name)
		}
		seen[p.Name] = true
		if p.Cluster != "" && !instanceNameRE.MatchString(p.Cluster) {
			add("%s.cluster: %q must be 1-63 letters, digits, '_', '.', ':' or '-'", where, p.Cluster)
		}
		if err := p.check(); err != nil {
			add("%s: %w", where, err)
		}
		if p.PatroniURL != "" {
			if _, err := patroni.ParseURL(p.PatroniURL); err != nil {
				add("%s.patroni_url: %w", where, err)
			}
		} else if p.PatroniCAFile != "" {
			add("%s.patroni_ca_file: set without patroni_url", where)
		}
		if t := p.Timeout.D(); t >= interval {
			add("%s.timeout: %s must be shorter than collector.interval %s", where, t, interval)
		}
	}
	ri := c.PgReplication.Interval.D()
	if interval > 0 && (ri < interval || ri%interval != 0) {
		add("pg_replication.interval: %s must be a multiple of collector.interval %s", ri, interval)
	}
	if c.Buffer.MemoryMaxBytes < 0 {
		add("buffer.memory_max_bytes: must not be negative")
	}
	for _, b := range []struct {
		key string
		v   int64
	}{{"buffer.disk_max_bytes", c.Buffer.DiskMaxBytes}, {"buffer.rejected_max_bytes", c.Buffer.RejectedMaxBytes}} {
		if b.v < minBufferBytes {
			add("%s: %d is below the minimum %d", b.key, b.v, minBufferBytes)
		}
	}
	return errors.Join(errs...)
}

// check validates the connection settings without doing any I/O besides what pgx.ParseConfig does
// for a DSN.
func (p *Postgres) check() error {
	if p.DSN != "" {
		if p.Host != "" || p.Port != 0 || p.User != "" || p.DBName != "" || p.SSLMode != "" || p.SSLRootCert != "" {
			return errors.New("dsn and host/port/user/dbname/sslmode/sslrootcert are mutually exclusive")
		}
	} else if p.Host == "" {
		return errors.New("dsn or host: required")
	}
	if p.Port < 0 || p.Port > 65535 {
		return fmt.Errorf("port: %d is out of range", p.Port)
	}
	switch p.SSLMode {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return fmt.Errorf("sslmode: %q is not a libpq sslmode", p.SSLMode)
	}
	if _, err := p.ConnConfig(); err != nil {
		return err
	}
	return nil
}

// ConnString is the connection string the instance is reached with: DSN as written, or a URL built
// from the separate keys (escaped by net/url).
func (p *Postgres) ConnString() string {
	if p.DSN != "" {
		return p.DSN
	}
	u := url.URL{Scheme: "postgres", Path: "/" + p.DBName}
	host := p.Host
	port := p.Port
	if port == 0 {
		port = 5432
	}
	q := url.Values{}
	if strings.HasPrefix(host, "/") {
		// A Unix socket directory goes in the query; the URL host stays empty.
		q.Set("host", host)
		q.Set("port", strconv.Itoa(port))
	} else {
		u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if p.User != "" {
		u.User = url.User(p.User)
	}
	if p.DBName == "" {
		u.Path = "/postgres"
	}
	if p.SSLMode != "" {
		q.Set("sslmode", p.SSLMode)
	}
	if p.SSLRootCert != "" {
		q.Set("sslrootcert", p.SSLRootCert)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ConnConfig parses the connection string. The password file is read at connection time, not here.
func (p *Postgres) ConnConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(p.ConnString())
	if err != nil {
		// pgx errors may quote the connection string; never echo a password.
		return nil, fmt.Errorf("connection settings: %s", redact(err.Error(), p))
	}
	return cc, nil
}

// Address is host:port of the first host, the value of every sample's "instance" label.
func (p *Postgres) Address() string {
	cc, err := p.ConnConfig()
	if err != nil {
		return p.Name
	}
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// redact removes a password written in the DSN from a message.
func redact(msg string, p *Postgres) string {
	u, err := url.Parse(p.DSN)
	if err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}
