package runbook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// maxResultRows bounds what a sql step reads back; an expectation over more rows is a mistake.
	maxResultRows = 10000
	// shownRows is how many result rows a sql step prints.
	shownRows = 50
)

// connect opens one connection for a step. In a loopback-only environment both the configured hosts
// and every address actually dialled must be loopback (or a Unix socket).
func (e *Engine) connect(ctx context.Context, dsnRef string) (*pgx.Conn, string, error) {
	dsn, err := e.env.expandStep(dsnRef)
	if err != nil {
		return nil, "", fmt.Errorf("database %s: %w", dsnRef, err)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, "", fmt.Errorf("database %s is empty", dsnRef)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("database %s: invalid connection string", dsnRef)
	}
	if e.env.LoopbackOnly {
		if err := checkLoopbackDSN(dsn); err != nil {
			return nil, "", fmt.Errorf("environment %s is loopback-only: %w", e.env.Name, err)
		}
		cfg.DialFunc = loopbackDialer(e.env.Name)
	}
	cfg.RuntimeParams["application_name"] = "pgactl-runbook"
	label := fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, label, classifyPG(ctx, fmt.Errorf("connect to %s: %w", label, err))
	}
	return conn, label, nil
}

// loopbackDialer refuses any TCP address that is not loopback, whatever a host name resolved to.
func loopbackDialer(envName string) pgconn.DialFunc {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network != "unix" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil || !isLoopbackHost(host) {
				return nil, fmt.Errorf("environment %s is loopback-only: refusing to connect to %s", envName, addr)
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// classifyPG marks authentication failures and unreachable servers, so callers can pick exit codes.
func classifyPG(ctx context.Context, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		if pgErr.Code == "28P01" || pgErr.Code == "28000" {
			return &classified{kind: ErrAuth, err: err}
		}
		return err
	case ctx.Err() != nil:
		return err
	}
	return &classified{kind: ErrUnreachable, err: err}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// runSQL executes a sql step. Without expect, the SQL may hold several statements (simple protocol)
// and only its command tag is shown; with expect it is one query whose rows are shown and checked,
// values in PostgreSQL's text form.
func (e *Engine) runSQL(ctx context.Context, s *Step, out *lineWriter) error {
	params := make([]any, 0, len(s.Params))
	for _, p := range s.Params {
		v, err := e.env.expandStep(p)
		if err != nil {
			return fmt.Errorf("params: %w", err)
		}
		params = append(params, v)
	}
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	out.println("on " + label)
	if s.Expect == nil {
		tag, err := conn.Exec(ctx, s.SQL, params...)
		if err != nil {
			return fmt.Errorf("sql: %w", err)
		}
		out.println(tag.String())
		return nil
	}
	res, err := query(ctx, conn, s.SQL, params...)
	if err != nil {
		return err
	}
	res.print(out)
	return res.check(s.Expect)
}

// result is a query's rows in PostgreSQL's text form.
type result struct {
	cols []string
	rows [][]string
}

// query runs one query with the simple protocol, so every value comes back as PostgreSQL prints it.
func query(ctx context.Context, conn *pgx.Conn, sql string, params ...any) (*result, error) {
	args := append([]any{pgx.QueryExecModeSimpleProtocol}, params...)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	defer rows.Close()
	res := &result{}
	for _, fd := range rows.FieldDescriptions() {
		res.cols = append(res.cols, fd.Name)
	}
	for rows.Next() {
		if len(res.rows) == maxResultRows {
			return nil, fmt.Errorf("sql: more than %d rows", maxResultRows)
		}
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	return res, nil
}

func (r *result) print(out *lineWriter) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.cols, "\t"))
	for i, row := range r.rows {
		if i == shownRows {
			fmt.Fprintf(tw, "… %d more rows\n", len(r.rows)-shownRows)
			break
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	if len(r.rows) == 1 {
		out.println("(1 row)")
	} else {
		out.println(fmt.Sprintf("(%d rows)", len(r.rows)))
	}
}

// check applies an expectation; every set part must hold.
func (r *result) check(x *Expect) error {
	var errs []error
	if x.Rows != nil && !x.Rows.Holds(float64(len(r.rows))) {
		errs = append(errs, fmt.Errorf("expected rows %s, got %d", x.Rows, len(r.rows)))
	}
	if x.Value != nil {
		switch {
		case len(r.rows) == 0 || len(r.rows[0]) == 0:
			errs = append(errs, fmt.Errorf("expected value %s, got no rows", x.Value))
		default:
			raw := r.rows[0][0]
			v, err := strconv.ParseFloat(raw, 64)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("expected value %s, got %q (not a number)", x.Value, raw))
			case !x.Value.Holds(v):
				errs = append(errs, fmt.Errorf("expected value %s, got %s", x.Value, raw))
			}
		}
	}
	if x.Equals != nil && !equalRows(r.rows, x.Equals) {
		errs = append(errs, fmt.Errorf("expected rows %s, got %s", formatRows(x.Equals), formatRows(r.rows)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("expectation not met: %w", errors.Join(errs...))
	}
	return nil
}

func equalRows(got, want [][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return false
		}
		for j := range got[i] {
			if got[i][j] != want[i][j] {
				return false
			}
		}
	}
	return true
}

func formatRows(rows [][]string) string {
	const maxShown = 5
	parts := make([]string, 0, min(len(rows), maxShown)+1)
	for i, r := range rows {
		if i == maxShown {
			parts = append(parts, fmt.Sprintf("… %d more", len(rows)-maxShown))
			break
		}
		parts = append(parts, "["+strings.Join(quoteAll(r), ", ")+"]")
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func quoteAll(vs []string) []string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return q
}
