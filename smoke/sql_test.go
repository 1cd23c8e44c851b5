package smoke

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/pgtest"
)

func execDB(t *testing.T, dsn string, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// The SQL checks run the seed's queries against a real PostgreSQL shaped like the metrics store:
// a metrics relation with timestamp and collector_id, and users with password_hash.
func TestSQLChecks(t *testing.T) {
	cluster := pgtest.Shared(t)
	const schema = `CREATE TABLE metrics ("timestamp" timestamptz NOT NULL, collector_id text NOT NULL, value double precision);
CREATE TABLE users (username text PRIMARY KEY, password_hash text NOT NULL);`
	argon := `$argon2id$v=19$m=65536,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG`
	bcrypt := `$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW`
	tests := []struct {
		name       string
		setup      string
		noSchema   bool
		wantVolume Status
		wantHashes Status
		volumeText string
		hashesText string
	}{
		{
			name: "healthy store",
			setup: fmt.Sprintf(`INSERT INTO metrics SELECT now() - (i || ' seconds')::interval, 'c1', i FROM generate_series(1, 300) i;
INSERT INTO users VALUES ('admin', '%s'), ('viewer', '%s');`, argon, bcrypt),
			wantVolume: StatusPass, volumeText: "300 samples",
			wantHashes: StatusPass, hashesText: "1 argon2id, 1 bcrypt",
		},
		{
			name: "no recent metrics, a plaintext password",
			setup: `INSERT INTO metrics VALUES (now() - interval '2 hours', 'c1', 1);
INSERT INTO users VALUES ('admin', 'hunter2'), ('ok', '` + argon + `');`,
			wantVolume: StatusFail, volumeText: "no metrics in the last hour",
			wantHashes: StatusFail, hashesText: "1 of 2 users",
		},
		{
			name:       "empty users",
			setup:      `INSERT INTO metrics VALUES (now(), 'c1', 1);`,
			wantVolume: StatusPass, wantHashes: StatusSkip, hashesText: "users table is empty",
		},
		{
			name:       "not migrated",
			noSchema:   true,
			wantVolume: StatusFail, volumeText: "migrate",
			wantHashes: StatusFail, hashesText: "migrate",
		},
	}
	target := startFake(t, fakeOpts{}, plainHTTP)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := cluster.CreateDB(t, fmt.Sprintf("smoke_sql_%d", i))
			if !tt.noSchema {
				execDB(t, dsn, schema)
				if tt.setup != "" {
					execDB(t, dsn, tt.setup)
				}
			}
			s := newSuite(t, target, func(c *Config) {
				c.DatabaseURL = dsn
				c.Only = []string{CheckSQLMetricsVolume, CheckSQLPasswordHashes}
			})
			got, _, _ := runAll(t, s)
			for _, c := range []struct {
				name, text string
				want       Status
			}{{CheckSQLMetricsVolume, tt.volumeText, tt.wantVolume}, {CheckSQLPasswordHashes, tt.hashesText, tt.wantHashes}} {
				r := got[c.name]
				if r.Status != c.want || !strings.Contains(r.Message, c.text) {
					t.Errorf("%s: %s %q, want %s containing %q", c.name, r.Status, r.Message, c.want, c.text)
				}
				if strings.Contains(r.Message, "hunter2") {
					t.Errorf("%s leaks a password: %q", c.name, r.Message)
				}
			}
		})
	}
	t.Run("unreachable database", func(t *testing.T) {
		s := newSuite(t, target, func(c *Config) {
			c.DatabaseURL = "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"
			c.Only = []string{CheckSQLMetricsVolume}
		})
		got, _, _ := runAll(t, s)
		if r := got[CheckSQLMetricsVolume]; r.Status != StatusFail || !strings.Contains(r.Message, "PGACTL_DATABASE_URL") {
			t.Errorf("got %s %q", r.Status, r.Message)
		}
	})
}
