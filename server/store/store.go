// Package store is the pgAnalytics API server's PostgreSQL store: users and refresh tokens, collectors
// and their configuration, the audit log, metric ingest into day-partitioned samples, the latest
// replication snapshots (with LISTEN/NOTIFY on every push) and the alerts evaluated from all of it.
//
// Errors callers are expected to handle are the sentinels below (match with errors.Is); any other
// error is an internal failure whose text is for logs, never for an HTTP response.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/wait"
)

// Sentinel errors.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("already exists")
	ErrTokenReused = errors.New("refresh token reused") // rotation of an already-rotated/revoked token
	ErrInvalid     = errors.New("invalid input")        // a value the schema cannot hold (empty name, unknown role, …)
	ErrLastAdmin   = errors.New("the last admin")       // deleting it would leave nobody to administer
	// ErrUnknownSeries: a push named a series by an id that is not one of its collector's series.
	ErrUnknownSeries = errors.New("unknown series id")
)

// Defaults applied by Open to zero Options fields.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultRetention      = 30 * 24 * time.Hour
)

// Options configures Open.
type Options struct {
	MaxConns       int32
	ConnectTimeout time.Duration // total time Open keeps retrying with backoff before giving up
	Retention      time.Duration // metrics retention (default 30 days); whole day partitions dropped
	Logger         *slog.Logger
}

// Store is safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	listenConf *pgx.ConnConfig // for ListenTopology's dedicated connection
	log        *slog.Logger
	retention  time.Duration
	series     *seriesCache
	partitions *partitionCache
}

// Open connects (retrying with exponential backoff up to ConnectTimeout, then a clear error) and pings.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	setRuntimeDefaults(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	s := &Store{
		pool:       pool,
		listenConf: cfg.ConnConfig.Copy(),
		log:        opts.Logger,
		retention:  opts.Retention,
		series:     newSeriesCache(defaultSeriesCacheSize),
		partitions: newPartitionCache(),
	}
	if err := s.waitReachable(ctx, opts.ConnectTimeout); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// setRuntimeDefaults makes every session of the store behave the same whatever the server's
// defaults: UTC for day and minute boundaries, and a recognisable application_name.
func setRuntimeDefaults(c *pgx.ConnConfig) {
	if _, ok := c.RuntimeParams["application_name"]; !ok {
		c.RuntimeParams["application_name"] = "pganalytics-api"
	}
	c.RuntimeParams["timezone"] = "UTC"
}

func (s *Store) waitReachable(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b := &backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for attempt := 1; ; attempt++ {
		err := s.pool.Ping(ctx)
		if err == nil {
			return nil
		}
		s.log.Warn("database not reachable yet", "attempt", attempt, "err", err)
		if !wait.Sleep(ctx, b.Next()) {
			return fmt.Errorf("connect to database: gave up after %s and %d attempts: %w", timeout, attempt, err)
		}
	}
}

// Close releases every pooled connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// parseID parses a UUID in its canonical 8-4-4-4-12 form. Anything else is reported as not found so
// that a malformed id in a URL is a 404, never a database error.
// IsClientError reports whether PostgreSQL refused err's statement for the data it was given
// (SQLSTATE classes 22 data exception, 23 integrity, 54 program limit): the client's input, which
// a better check before the store should have caught, not a failing database.
func IsClientError(err error) bool {
	code := pgCode(err)
	return len(code) == 5 && (code[:2] == "22" || code[:2] == "23" || code[:2] == "54")
}

// CanonicalID spells an id the one way the store does (lowercase, hyphenated), so that two
// spellings of one id compare equal; false when s is no id.
func CanonicalID(s string) (string, bool) {
	id, err := parseID(s)
	if err != nil {
		return "", false
	}
	v, err := id.Value()
	if err != nil {
		return "", false
	}
	str, ok := v.(string)
	return str, ok
}

func parseID(s string) (pgtype.UUID, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return pgtype.UUID{}, ErrNotFound
	}
	var id pgtype.UUID
	if err := id.Scan(s); err != nil {
		return pgtype.UUID{}, ErrNotFound
	}
	return id, nil
}

// PostgreSQL error codes the store turns into sentinels.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// notFound maps pgx.ErrNoRows to ErrNotFound and wraps anything else with msg.
func notFound(err error, msg string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// timePtr returns nil for a NULL timestamp.
func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}
