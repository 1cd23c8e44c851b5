package store

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/pganalytics/pganalytics/migrations"
)

// migrationLockID is the session advisory lock held while migrating ("pganalytics" as a number), so
// that N servers starting together migrate once and the others wait, then find nothing to do.
const migrationLockID int64 = 0x7067616e616c7974

// MigrationState is one embedded migration and whether the database has it.
type MigrationState struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Migrate applies every pending embedded migration and returns the names of those it applied (none
// when the schema is current). Safe to run concurrently from several servers.
func Migrate(ctx context.Context, databaseURL string) (applied []string, err error) {
	p, closeDB, err := newMigrationProvider(databaseURL)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		applied = append(applied, path.Base(r.Source.Path))
	}
	return applied, nil
}

// MigrationStatus lists every embedded migration, oldest first, with whether it is applied.
func MigrationStatus(ctx context.Context, databaseURL string) ([]MigrationState, error) {
	p, closeDB, err := newMigrationProvider(databaseURL)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(statuses))
	for _, st := range statuses {
		out = append(out, MigrationState{
			Version:   st.Source.Version,
			Name:      path.Base(st.Source.Path),
			Applied:   st.State == goose.StateApplied,
			AppliedAt: st.AppliedAt,
		})
	}
	return out, nil
}

func newMigrationProvider(databaseURL string) (*goose.Provider, func(), error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("parse database url: %w", err)
	}
	setRuntimeDefaults(cfg)
	db := stdlib.OpenDB(*cfg)
	closeDB := func() { _ = db.Close() }
	// Wait up to 10 minutes for another server's migration, probing every second.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, closeDB, nil
}
