package smoke

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

const (
	realAdmin, realAdminPassword   = "smoke-admin", "smoke-admin-password-1"
	realViewer, realViewerPassword = "smoke-viewer", "smoke-viewer-password-1"
	realOrigin                     = "https://console.smoke.test"
	realRegistrationSecret         = "smoke-registration-secret-0123456789abcdef"
)

// realAPI is pganalytics-api served in-process on a loopback port, on a migrated database of its own.
type realAPI struct {
	url    string
	caFile string
	dsn    string
	store  *store.Store
}

// startRealStore migrates a fresh database on the shared cluster and adds an admin and a viewer.
func startRealStore(t *testing.T, dbName string) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.Shared(t).CreateDB(t, dbName)
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	hasher := cheapHasher(t)
	for _, u := range []struct{ name, pw, role string }{
		{realAdmin, realAdminPassword, api.RoleAdmin},
		{realViewer, realViewerPassword, api.RoleViewer},
	} {
		hash, err := hasher.Hash(ctx, u.pw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(ctx, u.name, hash, u.role); err != nil {
			t.Fatalf("create user %s: %v", u.name, err)
		}
	}
	return st, dsn
}

// cheapHasher keeps argon2id (the checks look for it) at test-friendly cost.
func cheapHasher(t *testing.T) *auth.Hasher {
	t.Helper()
	h, err := auth.NewHasher(auth.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startRealAPI serves the real handler stack; ratePerMinute configures RATE_LIMIT_PER_MINUTE.
func startRealAPI(t *testing.T, st *store.Store, dsn string, ratePerMinute int) realAPI {
	t.Helper()
	return startRealAPIWith(t, st, dsn, func(cfg *config.Config) { cfg.RateLimitPerMinute = ratePerMinute })
}

// startRealAPIWith serves the real handler stack with the configuration adjusted by mutate.
func startRealAPIWith(t *testing.T, st *store.Store, dsn string, mutate func(*config.Config)) realAPI {
	t.Helper()
	cfg := config.Default()
	cfg.Environment = config.Development
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.JWTSecretKey = "smoke-jwt-secret-key-0123456789abcdef0123"
	cfg.RegistrationSecret = realRegistrationSecret
	cfg.Database.URL = dsn
	cfg.CORSAllowedOrigins = []string{realOrigin}
	cfg.Limits.ShutdownTimeout = config.Dur(5 * time.Second)
	mutate(&cfg)
	srv, err := server.New(server.Options{Config: &cfg, Store: st, Version: "3.2.0-smoke", Hasher: cheapHasher(t)})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	scheme := "http://"
	if cfg.TLS.Enabled {
		scheme = "https://"
	}
	return realAPI{url: scheme + ln.Addr().String(), dsn: dsn, store: st}
}

// pushOnce registers a collector with the real secret and pushes a small batch, as a collector would,
// so that the RBAC, freshness and SQL checks have data to look at.
func pushOnce(t *testing.T, base *client.Client) {
	t.Helper()
	ctx := context.Background()
	reg, err := base.Register(ctx, realRegistrationSecret, api.RegisterRequest{Name: "smoke-collector", Hostname: "smoke.test"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	now := time.Now().UTC()
	req := api.PushRequest{
		CollectedAt: now,
		Metrics: []api.Sample{
			{Name: "pg_up", Value: 1, Labels: map[string]string{"instance": "db1:5432"}},
			{Name: "pg_replication_replay_lag_bytes", Value: 1024, Labels: map[string]string{"instance": "db1:5432", "application_name": "standby1"}},
		},
		Status: &api.CollectorStatus{Version: "test", Instances: 1, IntervalSeconds: 60, CollectionsTotal: 1},
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(req); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := base.WithToken(reg.Token).PushGzip(ctx, buf.Bytes()); err != nil {
		t.Fatalf("push: %v", err)
	}
}

func realSuite(t *testing.T, target realAPI, mutate func(*Config)) *Suite {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: target.url, CAFile: target.caFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Client:         c,
		AdminUsername:  realAdmin,
		AdminPassword:  realAdminPassword,
		ViewerUsername: realViewer,
		ViewerPassword: realViewerPassword,
		DatabaseURL:    target.dsn,
		CORSOrigin:     realOrigin,
		CheckTimeout:   30 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAgainstRealAPI runs the whole suite against pganalytics-api on real PostgreSQL: every check
// passes (TLS skips over plain HTTP); with RATE_LIMIT_PER_MINUTE set huge, exactly the rate-limit
// check fails.
func TestAgainstRealAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the API")
	}
	st, dsn := startRealStore(t, "smoke_real_api")

	t.Run("all checks pass", func(t *testing.T) {
		target := startRealAPI(t, st, dsn, 100)
		c, err := client.New(client.Options{BaseURL: target.url})
		if err != nil {
			t.Fatal(err)
		}
		pushOnce(t, c)
		got, order, sum := runAll(t, realSuite(t, target, nil))
		for _, n := range order {
			t.Logf("%-4s %-20s %s", got[n].Status, n, got[n].Message)
		}
		for _, n := range Checks() {
			want := StatusPass
			if n == CheckTLS {
				want = StatusSkip
			}
			if got[n].Status != want {
				t.Errorf("%s: %s (%s), want %s", n, got[n].Status, got[n].Message, want)
			}
		}
		if sum.Failed != 0 {
			t.Errorf("summary %+v", sum)
		}
	})

	t.Run("huge rate limit fails only rate-limit", func(t *testing.T) {
		target := startRealAPI(t, st, dsn, 1_000_000)
		got, order, _ := runAll(t, realSuite(t, target, func(c *Config) { c.RateLimitRequests = 150 }))
		for _, n := range order {
			want := StatusPass
			switch n {
			case CheckTLS:
				want = StatusSkip
			case CheckRateLimit:
				want = StatusFail
			}
			if got[n].Status != want {
				t.Errorf("%s: %s (%s), want %s", n, got[n].Status, got[n].Message, want)
			}
		}
		if msg := got[CheckRateLimit].Message; !strings.Contains(msg, "RATE_LIMIT_PER_MINUTE") {
			t.Errorf("rate-limit message %q should say what to fix", msg)
		}
	})

	t.Run("over TLS", func(t *testing.T) {
		pki := newTestPKI(t)
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
		leaf := pki.leaf(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
		keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", leaf.Certificate[0])
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		target := startRealAPIWith(t, st, dsn, func(cfg *config.Config) {
			cfg.TLS = config.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile}
		})
		target.caFile = pki.caFile
		got, order, _ := runAll(t, realSuite(t, target, func(c *Config) {
			c.Only = []string{CheckHealth, CheckSecurityHeaders, CheckTLS, CheckLogin}
		}))
		if len(order) != 4 {
			t.Fatalf("ran %v", order)
		}
		for _, n := range order {
			if got[n].Status != StatusPass {
				t.Errorf("%s: %s (%s), want pass", n, got[n].Status, got[n].Message)
			}
		}
		if !strings.Contains(got[CheckSecurityHeaders].Message, "HSTS set") {
			t.Errorf("security-headers over TLS: %q", got[CheckSecurityHeaders].Message)
		}
	})

	t.Run("wrong admin password is an auth failure", func(t *testing.T) {
		target := startRealAPI(t, st, dsn, 100)
		s := realSuite(t, target, func(c *Config) { c.AdminPassword = "not-the-password" })
		_, err := s.Stream(context.Background(), func(Result) {})
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("err = %v, want ErrAuthFailed", err)
		}
	})
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
