package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Login throttle scopes: what a counter of failed logins is kept for.
const (
	ScopeAccountAddress = "account_address" // one username from one address
	ScopeAddress        = "address"         // any username from one address
	ScopeAccount        = "account"         // one username from anywhere: the last resort
)

// ThrottlePolicy is how many failed logins each scope allows within Window before it is locked
// for Window. A limit below 1 turns the scope off.
type ThrottlePolicy struct {
	PerAccountAddress, PerAddress, PerAccount int
	Window                                    time.Duration
}

// LoginLocks is what stands in the way of a login of one username from one address.
type LoginLocks struct {
	AccountAddress, Address, Account time.Time // locked until (zero: not locked)
	KnownAddress                     bool      // the account logged in from this address before
}

func accountAddressKey(username, ip string) string { return username + " " + ip }

// LoginLocks returns the locks in force at now for username logging in from ip.
func (s *Store) LoginLocks(ctx context.Context, username, ip string, now time.Time) (LoginLocks, error) {
	var l LoginLocks
	rows, err := s.pool.Query(ctx, `
		SELECT scope, locked_until FROM login_failures
		 WHERE locked_until > $4
		   AND ((scope = 'account_address' AND key = $1) OR (scope = 'address' AND key = $2)
		        OR (scope = 'account' AND key = $3))`,
		accountAddressKey(username, ip), ip, username, now)
	if err != nil {
		return l, fmt.Errorf("select login locks: %w", err)
	}
	for rows.Next() {
		var (
			scope string
			until time.Time
		)
		if err := rows.Scan(&scope, &until); err != nil {
			rows.Close()
			return l, fmt.Errorf("select login locks: %w", err)
		}
		switch scope {
		case ScopeAccountAddress:
			l.AccountAddress = until
		case ScopeAddress:
			l.Address = until
		case ScopeAccount:
			l.Account = until
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return l, fmt.Errorf("select login locks: %w", err)
	}
	if !l.Account.IsZero() {
		err := s.pool.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM login_addresses a JOIN users u ON u.id = a.user_id
			                WHERE u.username = $1 AND a.ip = $2)`, username, ip).Scan(&l.KnownAddress)
		if err != nil {
			return l, fmt.Errorf("select login addresses: %w", err)
		}
	}
	return l, nil
}

// RecordLoginFailure counts a failed login of username from ip in every scope (a counter older
// than the window starts again) and locks each scope that reaches its limit. It returns the scopes
// this failure locked, for the audit log. One statement per scope, so concurrent failures on any
// number of servers cannot lose a count.
func (s *Store) RecordLoginFailure(ctx context.Context, username, ip string, p ThrottlePolicy, now time.Time) ([]string, error) {
	var locked []string
	for _, c := range []struct {
		scope, key string
		limit      int
	}{
		{ScopeAccountAddress, accountAddressKey(username, ip), p.PerAccountAddress},
		{ScopeAddress, ip, p.PerAddress},
		{ScopeAccount, username, p.PerAccount},
	} {
		if c.limit < 1 {
			continue
		}
		var justLocked bool
		err := s.pool.QueryRow(ctx, `
			INSERT INTO login_failures AS f (scope, key, failures, window_start)
			VALUES ($1, $2, 1, $4)
			ON CONFLICT (scope, key) DO UPDATE SET
			       failures     = CASE WHEN f.window_start <= $4 - $5::bigint * interval '1 microsecond'
			                           THEN 1 ELSE f.failures + 1 END,
			       window_start = CASE WHEN f.window_start <= $4 - $5::bigint * interval '1 microsecond'
			                           THEN $4 ELSE f.window_start END
			RETURNING failures = $3`,
			c.scope, c.key, c.limit, now, p.Window.Microseconds()).Scan(&justLocked)
		if err != nil {
			return locked, fmt.Errorf("record login failure: %w", err)
		}
		if !justLocked {
			continue
		}
		if _, err := s.pool.Exec(ctx, `UPDATE login_failures SET locked_until = $3 WHERE scope = $1 AND key = $2`,
			c.scope, c.key, now.Add(p.Window)); err != nil {
			return locked, fmt.Errorf("lock login scope: %w", err)
		}
		locked = append(locked, c.scope)
	}
	return locked, nil
}

// RecordLoginSuccess clears the counters of username from ip, and of the account (its owner got
// in), and remembers ip as an address the account logs in from. The address's own counter stays:
// one right password must not wash away a stranger's guesses at other accounts.
func (s *Store) RecordLoginSuccess(ctx context.Context, userID, username, ip string, now time.Time) error {
	uid, err := parseID(userID)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE (scope = 'account_address' AND key = $1) OR (scope = 'account' AND key = $2)`,
			accountAddressKey(username, ip), username); err != nil {
			return fmt.Errorf("clear login failures: %w", err)
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO login_addresses (user_id, ip, last_success_at) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, ip) DO UPDATE SET last_success_at = EXCLUDED.last_success_at`, uid, ip, now)
		if pgCode(err) == codeForeignKeyViolation {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("remember login address: %w", err)
		}
		return nil
	})
}

// UnlockUser clears every lock and counter of username (its own, and its own from every address).
// It returns how many locks were in force. ErrNotFound for an unknown user.
func (s *Store) UnlockUser(ctx context.Context, username string, now time.Time) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)`, username).Scan(&exists); err != nil {
		return 0, fmt.Errorf("select user: %w", err)
	}
	if !exists {
		return 0, ErrNotFound
	}
	var locks int
	err := s.pool.QueryRow(ctx, `
		WITH gone AS (
		  DELETE FROM login_failures
		   WHERE (scope = 'account' AND key = $1)
		      OR (scope = 'account_address' AND left(key, length($1) + 1) = $1 || ' ')
		  RETURNING locked_until)
		SELECT count(*) FILTER (WHERE locked_until > $2) FROM gone`, username, now).Scan(&locks)
	if err != nil {
		return 0, fmt.Errorf("unlock user: %w", err)
	}
	return locks, nil
}

// trimLoginFailures drops counters whose window and lock are both over.
func (s *Store) trimLoginFailures(ctx context.Context, before time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE window_start < $1 AND (locked_until IS NULL OR locked_until < $1)`, before)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("trim login failures: %w", err)
	}
	return err
}
