package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/server"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

// *store.Store is the server's store.
var _ server.Store = (*store.Store)(nil)

func loadConfig(path string, e env) (*config.Config, error) {
	cfg, err := config.Load(path, e.getenv)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return cfg, nil
}

func newLogger(e env, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: l}))
}

// serve refuses to start, with one line, on a configuration that would run insecurely, an unreadable
// TLS key pair or an unreachable database (after the store's bounded retries).
func serve(ctx context.Context, configPath string, e env) error {
	cfg, err := loadConfig(configPath, e)
	if err != nil {
		return err
	}
	if err := cfg.ValidateServe(); err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	tlsConfig, err := server.LoadTLS(cfg)
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	// A connection string that cannot be parsed is the configuration's fault (exit 2), not the
	// database's; its text is left out, it may hold a password.
	if _, err := pgxpool.ParseConfig(cfg.Database.URL); err != nil {
		return exitcode.With(exitcode.Usage, errors.New("DATABASE_URL is not a valid PostgreSQL connection string (postgres://user@host:5432/db?sslmode=verify-full, or key=value pairs)"))
	}
	log := newLogger(e, cfg.LogLevel)
	version := buildinfo.String()

	st, err := store.Open(ctx, cfg.Database.URL, store.Options{
		MaxConns:       cfg.Database.MaxConns,
		ConnectTimeout: cfg.Database.ConnectTimeout.D(),
		Retention:      cfg.Database.Retention.D(),
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	defer st.Close()
	if cfg.Database.AutoMigrate {
		applied, err := store.Migrate(ctx, cfg.Database.URL)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			log.Info("applied migrations", "migrations", applied)
		}
	}
	limit, gcPercent := server.ApplyGCLimits(cfg, e.getenv)
	log.Info("go garbage collector", "memory_limit_bytes", limit, "gc_percent", gcPercent)
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: log, Version: version, TLS: tlsConfig})
	if err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	// SIGHUP reloads the alert rules and the TLS files; what does not load is logged and what is
	// in force stays.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.ReloadRules(); err != nil {
					log.Error("alert rules not reloaded; the previous ones stay", "err", err)
				}
				if err := srv.ReloadTLS(); err != nil {
					log.Error("TLS files not reloaded; the certificate in force stays", "err", err)
				}
			}
		}
	}()
	if err := srv.Run(ctx, ln); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}
