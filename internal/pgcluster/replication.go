package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// StartStandby creates a streaming standby of primary named cfg.Name, which is
// also its application_name and the name of its physical replication slot on
// the primary, and waits until the primary reports it streaming.
//
// It does without pg_basebackup (the npm builds lack it): it creates the slot,
// stops the primary cleanly, copies its data directory, and starts both. The
// primary is therefore briefly down; should another server take its port
// meanwhile, it comes back on a free one and the standby follows it there.
func StartStandby(ctx context.Context, primary *Cluster, cfg Config) (*Cluster, error) {
	s, err := startStandby(ctx, primary, cfg)
	if err != nil {
		return nil, fmt.Errorf("start standby %s of %s: %w", cfg.Name, primary.Name, err)
	}
	return s, nil
}

func startStandby(ctx context.Context, primary *Cluster, cfg Config) (*Cluster, error) {
	if !primary.Running() {
		return nil, errors.New("primary is not running")
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = filepath.Dir(primary.Dir)
	}
	cfg.Binaries = primary.Binaries
	s, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	if err := primary.exec(ctx, "postgres", "SELECT pg_create_physical_replication_slot($1, true)", cfg.Name); err != nil {
		return nil, errors.Join(fmt.Errorf("create slot: %w", err), os.RemoveAll(s.Dir))
	}
	if err := primary.Stop(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(s.Dir))
	}
	err = cloneStopped(primary, s, cfg.Settings)
	// The primary comes back whether or not the copy worked. Another server may have taken its port
	// while it was down (free ports are picked, not reserved): it then moves, and the standby follows.
	port := primary.Port
	err = errors.Join(err, primary.startFreePort(ctx, true))
	if err == nil && primary.Port != port {
		err = s.appendSettings(map[string]string{"primary_conninfo": primaryConninfo(primary, s.Name)})
	}
	if err == nil {
		err = s.startFreePort(ctx, cfg.Port == 0)
	}
	if err == nil {
		err = waitStreaming(ctx, primary, cfg.Name)
	}
	if err != nil {
		cleanup, cancel := cleanupContext(ctx)
		defer cancel()
		err = errors.Join(err, s.Remove(cleanup))
		if primary.Running() {
			err = errors.Join(err, primary.exec(cleanup, "postgres", "SELECT pg_drop_replication_slot($1)", cfg.Name))
		}
		return nil, err
	}
	return s, nil
}

// cloneStopped turns s into a standby copy of the stopped primary.
func cloneStopped(primary, s *Cluster, settings map[string]string) error {
	// The primary's runtime files and log are not part of the copy, and the
	// slot directory stays empty (copied slots would hold WAL for no one).
	skip := map[string]bool{"postmaster.pid": true, "postmaster.opts": true, logFileName: true}
	if err := copyDataDir(primary.DataDir, s.DataDir, skip); err != nil {
		return fmt.Errorf("copy data dir: %w", err)
	}
	standby := map[string]string{
		"port":                    fmt.Sprint(s.Port),
		"unix_socket_directories": s.SocketDir,
		"primary_conninfo":        primaryConninfo(primary, s.Name),
		"primary_slot_name":       s.Name,
	}
	if err := s.appendSettings(standby); err != nil {
		return err
	}
	if err := s.appendSettings(settings); err != nil {
		return err
	}
	if err := writeServerFile(filepath.Join(s.DataDir, "standby.signal"), nil); err != nil {
		return err
	}
	return s.saveMeta()
}

// primaryConninfo is how a standby named name reaches primary.
func primaryConninfo(primary *Cluster, name string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s application_name=%s", primary.Port, Superuser, name)
}

// waitStreaming waits until primary's pg_stat_replication shows application
// name streaming.
func waitStreaming(ctx context.Context, primary *Cluster, name string) error {
	var lastErr error
	err := poll(ctx, func() (bool, error) {
		ok, err := primary.queryBool(ctx, "postgres",
			"SELECT EXISTS (SELECT FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming')", name)
		lastErr = err
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s to stream: %w", name, errors.Join(err, lastErr))
	}
	return nil
}

var (
	dbNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	tableRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)
)

// Subscribe creates a publication called name on pub for tables (all tables
// when none is given) of database db, and a subscription of the same name on
// sub, and waits until the subscription has copied the tables' initial data.
// The tables must exist on both sides; names may be schema-qualified.
func Subscribe(ctx context.Context, pub, sub *Cluster, db, name string, tables ...string) error {
	if err := subscribe(ctx, pub, sub, db, name, tables); err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", sub.Name, pub.Name, err)
	}
	return nil
}

func subscribe(ctx context.Context, pub, sub *Cluster, db, name string, tables []string) error {
	if !nameRe.MatchString(name) || !dbNameRe.MatchString(db) {
		return fmt.Errorf("invalid publication name %q or database %q", name, db)
	}
	what := "ALL TABLES"
	if len(tables) > 0 {
		quoted := make([]string, len(tables))
		for i, t := range tables {
			if !tableRe.MatchString(t) {
				return fmt.Errorf("invalid table name %q", t)
			}
			quoted[i] = pgx.Identifier(strings.Split(t, ".")).Sanitize()
		}
		what = "TABLE " + strings.Join(quoted, ", ")
	}
	if err := pub.exec(ctx, db, "CREATE PUBLICATION "+name+" FOR "+what); err != nil {
		return fmt.Errorf("create publication: %w", err)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", pub.Port, Superuser, db)
	if err := sub.exec(ctx, db, "CREATE SUBSCRIPTION "+name+" CONNECTION '"+conninfo+"' PUBLICATION "+name); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	var lastErr error
	err := poll(ctx, func() (bool, error) {
		ok, err := sub.queryBool(ctx, db, `
			SELECT EXISTS (SELECT FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL AND pid IS NOT NULL)
			   AND NOT EXISTS (SELECT FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
			                    WHERE s.subname = $1 AND r.srsubstate <> 'r')`, name)
		lastErr = err
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("wait for initial sync: %w", errors.Join(err, lastErr))
	}
	return nil
}
