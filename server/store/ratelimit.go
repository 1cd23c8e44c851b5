package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/server/ratelimit"
)

// takeRateLimitSQL is ratelimit.GCRA.Take as one atomic statement: $1 key, $2 emission, $3
// tolerance, $4 the time (NULL: the database's clock, so that the servers' clocks do not matter).
//
// A new key is inserted with one token taken. An existing key's row is locked and, under READ
// COMMITTED, evaluated in its latest version, however many servers take from it at once:
// excluded.tat is now + emission, so greatest(tat + emission, excluded.tat) is max(tat, now) +
// emission, admitted when it stays within the tolerance of now. A refusal updates nothing, so it
// writes nothing and take returns no row; the tat reported then is read from the statement's
// snapshot (exact unless another server took from the key during this statement, in which case the
// wait is underestimated, and ratelimit.GCRA.Refused falls back to the longest possible wait when
// it does not fit).
const takeRateLimitSQL = `
WITH clock AS (SELECT coalesce($4::timestamptz, now()) AS at),
take AS (
    INSERT INTO rate_limits AS r (key, tat)
    SELECT $1, at + $2::interval FROM clock
    ON CONFLICT (key) DO UPDATE
       SET tat = greatest(r.tat + $2::interval, excluded.tat)
     WHERE greatest(r.tat + $2::interval, excluded.tat) <= excluded.tat - $2::interval + $3::interval
    RETURNING tat
)
SELECT take.tat IS NOT NULL, coalesce(take.tat, (SELECT tat FROM rate_limits WHERE key = $1)), clock.at
  FROM clock LEFT JOIN take ON true`

// The API server shares its rate-limit buckets through the store (a type assertion there).
var _ ratelimit.Store = (*Store)(nil)

// TakeRateLimit takes one token from key's bucket in the rate_limits table, shared by every server
// on this store, at at (the zero time: the database's clock). The key is stored as is when it is
// short printable text (what the server builds: ip:…, user:…, collector:…), as its SHA-256
// otherwise.
func (s *Store) TakeRateLimit(ctx context.Context, key string, g ratelimit.GCRA, at time.Time) (ratelimit.Decision, error) {
	var atArg any
	if !at.IsZero() {
		atArg = at
	}
	var (
		admitted bool
		tat      *time.Time
		now      time.Time
	)
	err := s.pool.QueryRow(ctx, takeRateLimitSQL, rateLimitKey(key), g.Emission, g.Tolerance, atArg).Scan(&admitted, &tat, &now)
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("take a rate-limit token: %w", err)
	}
	switch {
	case admitted:
		return g.Admitted(*tat, now), nil
	case tat == nil: // the key's row is newer than this statement's snapshot
		return g.Refused(time.Time{}, now), nil
	default:
		return g.Refused(*tat, now), nil
	}
}

// DeleteExpiredRateLimits drops the buckets that are full again (tat passed), which are equivalent
// to no row, and returns how many.
func (s *Store) DeleteExpiredRateLimits(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM rate_limits WHERE tat < now()`)
	if err != nil {
		return 0, fmt.Errorf("delete expired rate limits: %w", err)
	}
	return tag.RowsAffected(), nil
}

// maxRateLimitKey is the longest key stored as is.
const maxRateLimitKey = 128

// rateLimitKey is key when it is short valid UTF-8 without NUL (which PostgreSQL text cannot
// hold), its SHA-256 otherwise, so that any key fits the primary key's index.
func rateLimitKey(key string) string {
	if len(key) <= maxRateLimitKey && utf8.ValidString(key) && !strings.ContainsRune(key, 0) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
