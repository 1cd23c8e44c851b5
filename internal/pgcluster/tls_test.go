package pgcluster

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/devca"
)

// TestEnableTLS: after EnableTLS a client verifying the server's certificate and host name
// connects over TLS, a standby cloned afterwards does too, and a client trusting another CA is
// refused.
func TestEnableTLS(t *testing.T) {
	ctx := testContext(t)
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer("postgres", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := devca.New(t.TempDir(), "another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	primary := startTest(t, Config{Name: "tls_primary", BaseDir: testScratch(t).Dir, Binaries: testBinaries(t)})
	if err := primary.EnableTLS(ctx, cert.CertFile, cert.KeyFile); err != nil {
		t.Fatal(err)
	}
	standby, err := StartStandby(ctx, primary, Config{Name: "tls_standby"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Remove(context.Background()) })

	for _, c := range []*Cluster{primary, standby} {
		t.Run(c.Name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, c.VerifyFullDSN(Superuser, "postgres", ca.CertFile))
			if err != nil {
				t.Fatalf("verify-full: %v", err)
			}
			defer conn.Close(ctx)
			var ssl bool
			var version string
			if err := conn.QueryRow(ctx, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version); err != nil {
				t.Fatal(err)
			}
			if !ssl || (version != "TLSv1.2" && version != "TLSv1.3") {
				t.Fatalf("pg_stat_ssl: ssl=%v version=%s", ssl, version)
			}
			if conn, err := pgx.Connect(ctx, c.VerifyFullDSN(Superuser, "postgres", stranger.CertFile)); err == nil {
				conn.Close(ctx)
				t.Fatal("a client trusting another CA connected with verify-full")
			}
		})
	}
}
