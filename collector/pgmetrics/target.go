package pgmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/collector/config"
	"github.com/pganalytics/pganalytics/collector/patroni"
)

// applicationName identifies the collector's sessions in pg_stat_activity.
const applicationName = "pganalytics-collector"

// maxPasswordFileBytes bounds a password file; anything larger is not a password.
const maxPasswordFileBytes = 4096

// Target is one monitored instance and its connection, kept open between collections. A Target is
// used by one goroutine at a time (its own); Targets are independent of each other.
type Target struct {
	name     string
	cluster  string
	address  string
	timeout  time.Duration
	pwFile   string
	connCfg  *pgx.ConnConfig
	log      *slog.Logger
	conn     *pgx.Conn
	dbConns  map[string]*pgx.Conn // other databases of the instance (subscriptions live there)
	roleNote string               // how the session got pg_monitor's privileges, for the privilege report
	patroni  *patroni.Client      // nil: no patroni_url
	last     *State
}

// NewTarget prepares a Target; it does not connect.
func NewTarget(p config.Postgres, log *slog.Logger) (*Target, error) {
	cc, err := p.ConnConfig()
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", p.Name, err)
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = applicationName
	}
	var pc *patroni.Client
	if p.PatroniURL != "" {
		if pc, err = patroni.New(p.PatroniURL, p.PatroniCAFile); err != nil {
			return nil, fmt.Errorf("postgres %s: %w", p.Name, err)
		}
	}
	return &Target{
		patroni: pc,
		name:    p.Name,
		cluster: p.Cluster,
		address: p.Address(),
		timeout: p.Timeout.D(),
		pwFile:  p.PasswordFile,
		connCfg: cc,
		log:     log.With("instance", p.Name),
		dbConns: map[string]*pgx.Conn{},
	}, nil
}

// Name is the [[postgres]] name.
func (t *Target) Name() string { return t.name }

// SetTimeout changes the instance's collection timeout (between cycles, never during one).
func (t *Target) SetTimeout(d time.Duration) { t.timeout = d }

// Collect reads the instance within its own timeout. It never fails: an unreachable instance gives
// a State with Up false and Err set; a family that fails is listed in Failures. replication says
// whether the [pg_replication] families are due; when not, the previous values are carried over for
// the snapshot.
func (t *Target) Collect(ctx context.Context, replication bool) *State {
	start := time.Now()
	st := &State{Name: t.name, Cluster: t.cluster, Address: t.address, CollectedAt: start.UTC()}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	defer func() { st.Duration = time.Since(start) }()
	if t.patroni != nil {
		// Patroni answers even when PostgreSQL does not (that is when it matters): read it beside.
		done := make(chan struct{})
		go func() {
			defer close(done)
			st.Patroni, st.PatroniErr = t.patroni.Read(ctx, t.address)
		}()
		defer func() { <-done }()
	}

	conn, info, err := t.identify(ctx)
	if err != nil {
		st.Err = err
		if t.last != nil {
			// Keep the identity last seen so a down member stays in its cluster.
			st.Info = ServerInfo{SystemIdentifier: t.last.Info.SystemIdentifier, InRecovery: t.last.Info.InRecovery}
		}
		t.last = st
		return st
	}
	st.Up, st.Info = true, info
	for _, f := range families() {
		if (f.replication && !replication) || !f.applies(info) {
			continue
		}
		if err := f.collect(ctx, t, conn, st); err != nil {
			st.Failures = append(st.Failures, FamilyError{Family: f.name, Err: err})
			if conn.IsClosed() || ctx.Err() != nil {
				st.Failures = append(st.Failures, FamilyError{Family: "collection", Err: fmt.Errorf("aborted: %w", connErr(ctx, err))})
				t.dropConn(ctx)
				break
			}
		}
	}
	st.ReplicationFresh = replication
	if !replication && t.last != nil && t.last.Up {
		carryReplication(st, t.last)
	}
	t.last = st
	return st
}

// identify connects if needed and runs the instance query. A connection that died since the last
// collection (server restart, pg_terminate_backend) is replaced once, so pg_up only says 0 when the
// server really does not answer.
func (t *Target) identify(ctx context.Context) (*pgx.Conn, ServerInfo, error) {
	reused := t.conn != nil
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, ServerInfo{}, err
	}
	info, err := collectInstance(ctx, conn)
	if err != nil && reused && conn.IsClosed() && ctx.Err() == nil {
		t.dropConn(ctx)
		if conn, err = t.connect(ctx); err != nil {
			return nil, ServerInfo{}, err
		}
		info, err = collectInstance(ctx, conn)
	}
	if err != nil {
		if conn.IsClosed() || ctx.Err() != nil {
			t.dropConn(ctx)
		}
		return nil, ServerInfo{}, connErr(ctx, err)
	}
	return conn, info, nil
}

// connErr names a timeout as such instead of pgx's "conn closed".
func connErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return err
}

func carryReplication(st, prev *State) {
	st.Replicas, st.Slots, st.SlotStats = prev.Replicas, prev.Slots, prev.SlotStats
	st.Receiver, st.Replay, st.Conflicts, st.Subscriptions = prev.Receiver, prev.Replay, prev.Conflicts, prev.Subscriptions
}

func (t *Target) connect(ctx context.Context) (*pgx.Conn, error) {
	if t.conn != nil && !t.conn.IsClosed() {
		return t.conn, nil
	}
	conn, err := t.dial(ctx, "")
	if err != nil {
		return nil, err
	}
	t.conn = conn
	return conn, nil
}

// dial opens a session on database db ("" for the configured one) and gives it pg_monitor's
// privileges when the role holds them without inheriting them.
func (t *Target) dial(ctx context.Context, db string) (*pgx.Conn, error) {
	cc := t.connCfg.Copy()
	if db != "" {
		cc.Database = db
	}
	if t.pwFile != "" {
		pw, err := readPasswordFile(t.pwFile)
		if err != nil {
			return nil, err
		}
		cc.Password = pw
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", connErr(ctx, err))
	}
	note, err := adoptMonitorRole(ctx, conn)
	if err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	if note != t.roleNote && db == "" {
		t.roleNote = note
		t.log.Info("session privileges", "how", note)
	}
	return conn, nil
}

// The seed's role is created NOINHERIT and then granted pg_monitor: such a role holds pg_monitor
// but only gets its privileges after SET ROLE.
const roleSQL = `
SELECT current_user::text, r.rolsuper,
       pg_has_role(current_user, 'pg_monitor', 'USAGE'),
       pg_has_role(current_user, 'pg_monitor', 'MEMBER')
FROM pg_roles r WHERE r.rolname = current_user`

func adoptMonitorRole(ctx context.Context, conn *pgx.Conn) (string, error) {
	var user string
	var super, usage, member bool
	if err := conn.QueryRow(ctx, roleSQL).Scan(&user, &super, &usage, &member); err != nil {
		return "", fmt.Errorf("read session role: %w", err)
	}
	switch {
	case super:
		return fmt.Sprintf("role %s is a superuser", user), nil
	case usage:
		return fmt.Sprintf("role %s inherits pg_monitor", user), nil
	case member:
		if _, err := conn.Exec(ctx, "SET ROLE pg_monitor"); err != nil {
			return fmt.Sprintf("role %s is a NOINHERIT member of pg_monitor and SET ROLE pg_monitor failed: %v", user, err), nil
		}
		return fmt.Sprintf("role %s is a NOINHERIT member of pg_monitor: the session runs SET ROLE pg_monitor", user), nil
	default:
		return fmt.Sprintf("role %s does not have pg_monitor", user), nil
	}
}

func readPasswordFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", name, err)
	}
	if len(b) > maxPasswordFileBytes {
		return "", fmt.Errorf("password file %s: larger than %d bytes", name, maxPasswordFileBytes)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s: empty", name)
	}
	return pw, nil
}

// databaseConn returns a session on database db of the same instance, cached until Close.
func (t *Target) databaseConn(ctx context.Context, db string) (querier, error) {
	if db == t.connCfg.Database && t.conn != nil {
		return t.conn, nil
	}
	if c := t.dbConns[db]; c != nil && !c.IsClosed() {
		return c, nil
	}
	c, err := t.dial(ctx, db)
	if err != nil {
		return nil, err
	}
	t.dbConns[db] = c
	return c, nil
}

// RoleNote says how the current session got its privileges (empty before the first connection).
func (t *Target) RoleNote() string { return t.roleNote }

func (t *Target) dropConn(ctx context.Context) {
	if t.conn != nil {
		_ = t.conn.Close(ctx)
		t.conn = nil
	}
	for db, c := range t.dbConns {
		_ = c.Close(ctx)
		delete(t.dbConns, db)
	}
}

// Close ends the Target's sessions.
func (t *Target) Close(ctx context.Context) { t.dropConn(ctx) }
