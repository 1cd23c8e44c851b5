package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

const (
	testJWTSecret          = "test-jwt-secret-test-jwt-secret-0123"
	testRegistrationSecret = "test-registration-secret-0123456789ab"
	testPassword           = "correct horse battery"
)

// cheapHasher keeps argon2 fast in tests; the production parameters are tested in server/auth.
func cheapHasher(t testing.TB) *auth.Hasher {
	t.Helper()
	h, err := auth.NewHasher(auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testConfig is a development configuration on loopback with a rate limit high enough not to
// interfere; tests that exercise a setting change it.
func testConfig(t testing.TB, databaseURL string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{
			"ENVIRONMENT":           "development",
			"LISTEN_ADDR":           "127.0.0.1:0",
			"DATABASE_URL":          databaseURL,
			"JWT_SECRET_KEY":        testJWTSecret,
			"REGISTRATION_SECRET":   testRegistrationSecret,
			"RATE_LIMIT_PER_MINUTE": "100000",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "test-" + t.Name()
	cfg.Alerting.EvaluationInterval = config.Dur(200 * time.Millisecond)
	cfg.Limits.DrainDelay = config.Dur(0) // TestGracefulDrain sets one; every other test stops at once
	return cfg
}

// dbName derives a database name unique to the test (the shared cluster hosts every test's database).
func dbName(t testing.TB, suffix string) string {
	sum := sha256.Sum256([]byte(t.Name() + "/" + suffix))
	return "srv_" + hex.EncodeToString(sum[:8])
}

// testDB creates a migrated database on the shared cluster and opens the real store on it.
func testDB(t testing.TB) (dsn string, st *store.Store, pool *pgxpool.Pool) {
	t.Helper()
	dsn = pgtest.Shared(t).CreateDB(t, dbName(t, "db"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{MaxConns: 10, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	pool, err = pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return dsn, st, pool
}

// testServer is a real server on a loopback port over a real store.
type testServer struct {
	t      testing.TB
	srv    *Server
	store  *store.Store
	pool   *pgxpool.Pool
	url    string
	client *http.Client
	cfg    *config.Config
	stop   func() error // graceful shutdown; returns Run's error
}

type serverOption func(*config.Config)

func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	dsn, st, pool := testDB(t)
	return startServerOn(t, dsn, st, pool, opts...)
}

// startServerOn starts a server over an existing database (several servers may share one).
func startServerOn(t testing.TB, dsn string, st *store.Store, pool *pgxpool.Pool, opts ...serverOption) *testServer {
	t.Helper()
	cfg := testConfig(t, dsn)
	for _, o := range opts {
		o(cfg)
	}
	srv, err := New(Options{Config: cfg, Store: st, Hasher: cheapHasher(t), Version: "test"})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	scheme := "http"
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	if cfg.TLS.Enabled {
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own self-signed certificate
	}
	ts := &testServer{
		t: t, srv: srv, store: st, pool: pool, cfg: cfg,
		url:    scheme + "://" + ln.Addr().String(),
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
	}
	var stopped bool
	var runErr error
	ts.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
			transport.CloseIdleConnections()
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return ts
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
	closes bool // the server asked to close the connection (Connection: close)
}

func (r response) errorCode() string {
	var e api.Error
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r response) errorMessage() string {
	var e api.Error
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Message
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// req describes one request.
type req struct {
	method, path string
	token        string
	body         any // []byte sent as is, anything else JSON-encoded
	header       map[string]string
}

func (ts *testServer) do(r req) response {
	ts.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequest(r.method, ts.url+r.path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := ts.client.Do(hr)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b, closes: res.Close}
}

// mustStatus fails unless the response has the status.
func mustStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// addUser creates a user directly in the store (as `pganalytics-api user add` does).
func (ts *testServer) addUser(name, role string) api.User {
	ts.t.Helper()
	hash, err := ts.srv.hasher.Hash(context.Background(), testPassword)
	if err != nil {
		ts.t.Fatal(err)
	}
	u, err := ts.store.CreateUser(context.Background(), name, hash, role)
	if err != nil {
		ts.t.Fatal(err)
	}
	return u
}

func (ts *testServer) login(name string) api.TokenPair {
	ts.t.Helper()
	r := ts.do(req{method: "POST", path: "/api/v1/auth/login", body: api.LoginRequest{Username: name, Password: testPassword}})
	mustStatus(ts.t, r, http.StatusOK)
	var p api.TokenPair
	r.decode(ts.t, &p)
	return p
}

// userToken creates a user of role and logs in.
func (ts *testServer) userToken(name, role string) string {
	ts.t.Helper()
	ts.addUser(name, role)
	return ts.login(name).AccessToken
}

func (ts *testServer) register(name string) api.RegisterResponse {
	ts.t.Helper()
	r := ts.do(req{method: "POST", path: "/api/v1/collectors/register",
		header: map[string]string{"X-Registration-Secret": testRegistrationSecret},
		body:   api.RegisterRequest{Name: name, Hostname: name + ".example"}})
	mustStatus(ts.t, r, http.StatusCreated)
	var rr api.RegisterResponse
	r.decode(ts.t, &rr)
	return rr
}

// samplePush is a valid push of n samples collected now.
func samplePush(n int) api.PushRequest {
	now := time.Now().UTC().Truncate(time.Second)
	p := api.PushRequest{CollectedAt: now, Status: &api.CollectorStatus{
		Version: "test", Instances: 1, IntervalSeconds: 10, BufferUtilization: 0.25,
		CollectionsTotal: 100, CollectionFailuresTotal: 2,
	}}
	for i := range n {
		p.Metrics = append(p.Metrics, api.Sample{
			Name:   "pg_replication_replay_lag_bytes",
			Value:  float64(i),
			Labels: map[string]string{"instance": "db1:5432", "application_name": "standby" + string(rune('a'+i%26))},
		})
	}
	return p
}

func gzipJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, ok := v.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (ts *testServer) push(token string, body []byte, gz bool) response {
	ts.t.Helper()
	h := map[string]string{}
	if gz {
		h["Content-Encoding"] = "gzip"
	}
	return ts.do(req{method: "POST", path: "/api/v1/metrics/push", token: token, body: body, header: h})
}

// sampleCount is the seed's validation query.
func (ts *testServer) sampleCount(collectorID string) int {
	ts.t.Helper()
	var n int
	if err := ts.pool.QueryRow(context.Background(),
		"SELECT COUNT(*) FROM metrics WHERE collector_id = '"+collectorID+"'").Scan(&n); err != nil {
		ts.t.Fatal(err)
	}
	return n
}

// metricValue reads one sample of the server's Prometheus exposition ("" when absent).
func (ts *testServer) metricValue(series string) string {
	ts.t.Helper()
	r := ts.do(req{method: "GET", path: "/metrics"})
	mustStatus(ts.t, r, http.StatusOK)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		return ""
	}
	return string(m[1])
}
