package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/api"
)

// ListAudit limits.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditQuery selects audit entries, newest first. Limit defaults to 100 and is capped at 1000;
// BeforeID > 0 pages backwards (entries with a smaller id); Action filters on one action.
type AuditQuery struct {
	Limit    int
	BeforeID int64
	Action   string
}

// Audit appends one entry. A zero At means now. ErrInvalid on an empty actor or action or a Detail
// that is not JSON.
func (s *Store) Audit(ctx context.Context, e api.AuditEntry) error {
	if e.Actor == "" || e.Action == "" {
		return fmt.Errorf("%w: audit actor and action are required", ErrInvalid)
	}
	var detail []byte
	if len(e.Detail) > 0 {
		if !json.Valid(e.Detail) {
			return fmt.Errorf("%w: audit detail is not JSON", ErrInvalid)
		}
		detail = e.Detail
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO audit_log (at, actor, action, target, ip, success, detail)
		VALUES (COALESCE($1, now()), $2, $3, $4, $5, $6, $7::jsonb)`,
		at, e.Actor, e.Action, e.Target, e.IP, e.Success, detail)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// ListAudit returns audit entries newest first.
func (s *Store) ListAudit(ctx context.Context, q AuditQuery) ([]api.AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	var (
		where []string
		args  []any
	)
	if q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		where = append(where, "id < $"+strconv.Itoa(len(args)))
	}
	if q.Action != "" {
		args = append(args, q.Action)
		where = append(where, "action = $"+strconv.Itoa(len(args)))
	}
	sql := `SELECT id, at, actor, action, target, ip, success, detail FROM audit_log`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	sql += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.AuditEntry, error) {
		var (
			e      api.AuditEntry
			detail []byte
		)
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.IP, &e.Success, &detail)
		if len(detail) > 0 {
			e.Detail = json.RawMessage(detail)
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return entries, nil
}

// RequestStats is one API server's request counters for one minute.
type RequestStats struct {
	Server                                                      string
	Minute                                                      time.Time
	Requests, RateLimited, AuthFailures, ServerErrors, DBErrors int64
	DurationP95Ms                                               float64
}

// RecordRequestStats stores a server's totals for a minute (Minute is truncated to the minute). A
// later call for the same server and minute replaces the earlier one, so a server may flush its
// running totals for the current minute as often as it likes. ErrInvalid on an empty server name.
func (s *Store) RecordRequestStats(ctx context.Context, st RequestStats) error {
	if st.Server == "" || st.Minute.IsZero() {
		return fmt.Errorf("%w: request stats need a server and a minute", ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO request_stats (server, minute, requests, rate_limited, auth_failures, server_errors, db_errors, duration_p95_ms)
		VALUES ($1, date_trunc('minute', $2::timestamptz), $3, $4, $5, $6, $7, $8)
		ON CONFLICT (minute, server) DO UPDATE SET
		       requests = EXCLUDED.requests, rate_limited = EXCLUDED.rate_limited,
		       auth_failures = EXCLUDED.auth_failures, server_errors = EXCLUDED.server_errors,
		       db_errors = EXCLUDED.db_errors, duration_p95_ms = EXCLUDED.duration_p95_ms`,
		st.Server, st.Minute, st.Requests, st.RateLimited, st.AuthFailures, st.ServerErrors, st.DBErrors, st.DurationP95Ms)
	if err != nil {
		return fmt.Errorf("record request stats: %w", err)
	}
	return nil
}
