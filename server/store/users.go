package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/api"
)

// UserRecord is a user with what authentication needs.
type UserRecord struct {
	api.User
	PasswordHash string
}

// RefreshToken is one refresh token of a login's chain (family). Only its id (the JWT jti) is stored.
type RefreshToken struct {
	ID, UserID, FamilyID string
	ExpiresAt            time.Time
}

func validRole(role string) bool {
	switch role {
	case api.RoleAdmin, api.RoleOperator, api.RoleViewer:
		return true
	}
	return false
}

// CreateUser stores a user whose password the caller already hashed. ErrConflict on a duplicate
// username, ErrInvalid on an empty username or hash or an unknown role.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash, role string) (api.User, error) {
	if username == "" || passwordHash == "" || !validRole(role) {
		return api.User{}, fmt.Errorf("%w: username, password hash and a role of admin, operator or viewer are required", ErrInvalid)
	}
	u := api.User{Username: username, Role: role}
	err := s.pool.QueryRow(ctx,
		`INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id::text, created_at`,
		username, passwordHash, role).Scan(&u.ID, &u.CreatedAt)
	if err != nil {
		if pgCode(err) == codeUniqueViolation {
			return api.User{}, ErrConflict
		}
		return api.User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// UserByUsername returns the user with its password hash. ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (UserRecord, error) {
	var r UserRecord
	err := s.pool.QueryRow(ctx,
		`SELECT id::text, username, role, created_at, password_hash FROM users WHERE username = $1`, username).
		Scan(&r.ID, &r.Username, &r.Role, &r.CreatedAt, &r.PasswordHash)
	if err != nil {
		return UserRecord{}, notFound(err, "select user")
	}
	return r, nil
}

// UserByID returns a user. ErrNotFound, also for a malformed id.
func (s *Store) UserByID(ctx context.Context, id string) (api.User, error) {
	uid, err := parseID(id)
	if err != nil {
		return api.User{}, err
	}
	var u api.User
	err = s.pool.QueryRow(ctx,
		`SELECT id::text, username, role, created_at FROM users WHERE id = $1`, uid).
		Scan(&u.ID, &u.Username, &u.Role, &u.CreatedAt)
	if err != nil {
		return api.User{}, notFound(err, "select user")
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]api.User, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT u.id::text, u.username, u.role, u.created_at,
			coalesce((SELECT array_agg(t.role ORDER BY t.role) FROM team_roles t WHERE t.user_id = u.id), '{}')
		FROM users u ORDER BY u.username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.User, error) {
		var u api.User
		err := row.Scan(&u.ID, &u.Username, &u.Role, &u.CreatedAt, &u.TeamRoles)
		if len(u.TeamRoles) == 0 {
			u.TeamRoles = nil
		}
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// DeleteUser removes a user; its refresh tokens go with it (ON DELETE CASCADE), so none of them can
// be rotated any more. ErrNotFound; ErrLastAdmin when it is the only admin left (checked and done
// under a lock on the admins, so two deletions at once cannot remove the last two).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	uid, err := parseID(id)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var role string
		if err := tx.QueryRow(ctx, `SELECT role FROM users WHERE id = $1 FOR UPDATE`, uid).Scan(&role); err != nil {
			return notFound(err, "select user")
		}
		if role == api.RoleAdmin {
			rows, err := tx.Query(ctx, `SELECT id FROM users WHERE role = 'admin' FOR UPDATE`)
			if err != nil {
				return fmt.Errorf("lock admins: %w", err)
			}
			admins := 0
			for rows.Next() {
				admins++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("lock admins: %w", err)
			}
			if admins <= 1 {
				return ErrLastAdmin
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, uid); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		return nil
	})
}

// CreateRefreshToken stores a new token (the first of a family at login). ErrConflict on a duplicate
// id, ErrNotFound for an unknown user, ErrInvalid for an empty id or family.
func (s *Store) CreateRefreshToken(ctx context.Context, t RefreshToken) error {
	if t.ID == "" || t.FamilyID == "" {
		return fmt.Errorf("%w: refresh token id and family are required", ErrInvalid)
	}
	uid, err := parseID(t.UserID)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx,
		`INSERT INTO refresh_tokens (id, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)`,
		t.ID, uid, t.FamilyID, t.ExpiresAt)
	return refreshInsertErr(err)
}

func refreshInsertErr(err error) error {
	switch {
	case err == nil:
		return nil
	case pgCode(err) == codeUniqueViolation:
		return ErrConflict
	case pgCode(err) == codeForeignKeyViolation:
		return ErrNotFound
	}
	return fmt.Errorf("insert refresh token: %w", err)
}

// RotateRefreshToken atomically marks oldID used and inserts next in the same family for the same
// user (next.UserID and next.FamilyID may be empty; if set they must match oldID's). If oldID is
// already used or revoked, it revokes the whole family and returns ErrTokenReused. Unknown or
// expired -> ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next RefreshToken) error {
	if next.ID == "" {
		return fmt.Errorf("%w: next refresh token id is required", ErrInvalid)
	}
	var reused bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			userID, familyID string
			spent, expired   bool
		)
		err := tx.QueryRow(ctx, `
			SELECT user_id::text, family_id, used_at IS NOT NULL OR revoked_at IS NOT NULL, expires_at <= now()
			  FROM refresh_tokens WHERE id = $1 FOR UPDATE`, oldID).Scan(&userID, &familyID, &spent, &expired)
		if err != nil {
			return notFound(err, "select refresh token")
		}
		if spent {
			// A stolen token replayed, or the legitimate client after the thief: end the login.
			if _, err := tx.Exec(ctx,
				`UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL`, familyID); err != nil {
				return fmt.Errorf("revoke refresh token family: %w", err)
			}
			reused = true
			return nil
		}
		if expired {
			return ErrNotFound
		}
		if (next.UserID != "" && next.UserID != userID) || (next.FamilyID != "" && next.FamilyID != familyID) {
			return fmt.Errorf("%w: next refresh token must continue the same user and family", ErrInvalid)
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = now() WHERE id = $1`, oldID); err != nil {
			return fmt.Errorf("mark refresh token used: %w", err)
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO refresh_tokens (id, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)`,
			next.ID, userID, familyID, next.ExpiresAt)
		return refreshInsertErr(err)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
			return err
		}
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	if reused {
		return ErrTokenReused
	}
	return nil
}

// RevokeRefreshToken revokes the token's whole family (logout). Revoking twice is not an error.
// ErrNotFound for an unknown id.
func (s *Store) RevokeRefreshToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
		 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE id = $1)`, id)
	if err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
