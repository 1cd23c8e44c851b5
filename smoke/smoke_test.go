package smoke

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
)

// serverKind picks how the fake is served.
type serverKind int

const (
	plainHTTP serverKind = iota
	validTLS
	expiredTLS
	expiringTLS
)

type fakeTarget struct {
	url        string
	caFile     string
	insecure   bool
	fake       *fakeAPI
	closeCheck func()
}

func startFake(t *testing.T, opts fakeOpts, kind serverKind) fakeTarget {
	t.Helper()
	fake := newFakeAPI(opts)
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	target := fakeTarget{fake: fake}
	if kind == plainHTTP {
		srv.Start()
	} else {
		pki := newTestPKI(t)
		now := time.Now()
		var cert tls.Certificate
		switch kind {
		case validTLS:
			cert = pki.leaf(t, now.Add(-time.Hour), now.Add(365*24*time.Hour))
		case expiredTLS:
			cert = pki.leaf(t, now.Add(-90*24*time.Hour), now.Add(-24*time.Hour))
			// Only the TLS check may notice: the others run as with --insecure-skip-verify.
			target.insecure = true
		case expiringTLS:
			cert = pki.leaf(t, now.Add(-time.Hour), now.Add(3*24*time.Hour))
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.StartTLS()
		target.caFile = pki.caFile
	}
	t.Cleanup(srv.Close)
	target.url = srv.URL
	return target
}

func newSuite(t *testing.T, target fakeTarget, mutate func(*Config)) *Suite {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: target.url, CAFile: target.caFile, InsecureSkipVerify: target.insecure, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Client:            c,
		AdminUsername:     fakeAdmin,
		AdminPassword:     fakeAdminPassword,
		ViewerUsername:    fakeViewer,
		ViewerPassword:    fakeViewerPassword,
		CORSOrigin:        fakeAllowedOrigin,
		RateLimitRequests: 150,
		CheckTimeout:      10 * time.Second,
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

func runAll(t *testing.T, s *Suite) (map[string]Result, []string, Summary) {
	t.Helper()
	got := map[string]Result{}
	var order []string
	sum, err := s.Stream(context.Background(), func(r Result) {
		got[r.Name] = r
		order = append(order, r.Name)
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	return got, order, sum
}

// baseline is what a correct server yields with no database URL.
func baseline(kind serverKind) map[string]Status {
	want := map[string]Status{}
	for _, n := range Checks() {
		want[n] = StatusPass
	}
	want[CheckSQLMetricsVolume] = StatusSkip
	want[CheckSQLPasswordHashes] = StatusSkip
	if kind == plainHTTP {
		want[CheckTLS] = StatusSkip
	}
	return want
}

func TestSuiteAgainstMisconfiguredServers(t *testing.T) {
	tests := []struct {
		name     string
		opts     fakeOpts
		kind     serverKind
		failing  string // the one check that must fail ("" for none)
		wantText string // in the failing message
	}{
		{name: "correct over HTTP", kind: plainHTTP},
		{name: "correct over TLS", kind: validTLS},
		{name: "X-Frame-Options missing", opts: fakeOpts{noFrameOptions: true}, failing: CheckSecurityHeaders, wantText: "X-Frame-Options"},
		{name: "headers only on success", opts: fakeOpts{headersOnlyOnSuccess: true}, failing: CheckSecurityHeaders, wantText: "smoke-no-such-route"},
		{name: "no HSTS over TLS", opts: fakeOpts{noHSTS: true}, kind: validTLS, failing: CheckSecurityHeaders, wantText: "Strict-Transport-Security"},
		{name: "expired certificate", kind: expiredTLS, failing: CheckTLS, wantText: "expired"},
		{name: "certificate expiring in 3 days", kind: expiringTLS, failing: CheckTLS, wantText: "expires in 3.0 days"},
		{name: "no rate limit", opts: fakeOpts{noRateLimit: true}, failing: CheckRateLimit, wantText: "no 429 after 150"},
		{name: "429 without Retry-After", opts: fakeOpts{noRetryAfter: true}, failing: CheckRateLimit, wantText: "Retry-After"},
		{name: "SQL text in an error", opts: fakeOpts{sqlInErrors: true}, failing: CheckErrorLeaks, wantText: "SQL text"},
		{name: "stack trace in a 404", opts: fakeOpts{stackIn404: true}, failing: CheckErrorLeaks, wantText: "stack trace"},
		{name: "500 on an injection probe", opts: fakeOpts{crashOnBadLimit: true}, failing: CheckSQLInjection, wantText: "answered 500"},
		{name: "viewer reads config", opts: fakeOpts{viewerReadsConfig: true}, failing: CheckRBAC, wantText: "admin role"},
		{name: "refresh token reusable", opts: fakeOpts{refreshReusable: true}, failing: CheckRefreshRotation, wantText: "still works"},
		{name: "CORS wildcard", opts: fakeOpts{corsWildcard: true}, failing: CheckCORS, wantText: `"*"`},
		{name: "wrong registration secret accepted", opts: fakeOpts{acceptAnySecret: true}, failing: CheckRegistrationSecret, wantText: "accepted"},
		{name: "stale collector", opts: fakeOpts{staleCollector: true}, failing: CheckMetricsFreshness, wantText: "demo (last push"},
		{name: "login messages enumerate users", opts: fakeOpts{enumerableLogin: true}, failing: CheckLogin, wantText: "enumerated"},
		{name: "degraded health", opts: fakeOpts{healthStatus: "degraded"}, failing: CheckHealth, wantText: "degraded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := startFake(t, tt.opts, tt.kind)
			got, order, sum := runAll(t, newSuite(t, target, nil))
			want := baseline(tt.kind)
			if tt.failing != "" {
				want[tt.failing] = StatusFail
			}
			if strings.Join(order, ",") != strings.Join(Checks(), ",") {
				t.Errorf("order = %v, want %v", order, Checks())
			}
			for _, name := range order {
				t.Logf("%-4s %-20s %s", got[name].Status, name, got[name].Message)
			}
			for name, status := range want {
				r := got[name]
				if r.Status != status {
					t.Errorf("%s: %s (%s), want %s", name, r.Status, r.Message, status)
				}
				if r.Message == "" || strings.Contains(r.Message, "\n") {
					t.Errorf("%s: message %q must be one non-empty line", name, r.Message)
				}
			}
			if tt.failing != "" && !strings.Contains(got[tt.failing].Message, tt.wantText) {
				t.Errorf("%s message %q lacks %q", tt.failing, got[tt.failing].Message, tt.wantText)
			}
			wantFailed := 0
			if tt.failing != "" {
				wantFailed = 1
			}
			if sum.Failed != wantFailed || sum.Passed+sum.Failed+sum.Skipped != len(Checks()) {
				t.Errorf("summary = %+v", sum)
			}
		})
	}
}

func TestSuiteSetupErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newSuite(t, fakeTarget{url: "http://" + addr}, nil)
		n := 0
		_, err = s.Stream(context.Background(), func(Result) { n++ })
		if !errors.Is(err, client.ErrUnreachable) || n != 0 {
			t.Fatalf("err = %v after %d results, want ErrUnreachable and none", err, n)
		}
	})
	t.Run("admin login refused", func(t *testing.T) {
		target := startFake(t, fakeOpts{}, plainHTTP)
		s := newSuite(t, target, func(c *Config) { c.AdminPassword = "wrong-password" })
		_, err := s.Stream(context.Background(), func(Result) {})
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("err = %v, want ErrAuthFailed", err)
		}
		if strings.Contains(err.Error(), "wrong-password") {
			t.Error("the error leaks the password")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		target := startFake(t, fakeOpts{}, plainHTTP)
		s := newSuite(t, target, nil)
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		_, err := s.Stream(ctx, func(Result) { n++; cancel() })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Fatalf("err = %v after %d results, want context.Canceled after 1", err, n)
		}
	})
}

func TestSuiteWithoutCredentialsSkips(t *testing.T) {
	target := startFake(t, fakeOpts{}, plainHTTP)
	s := newSuite(t, target, func(c *Config) {
		c.AdminUsername, c.AdminPassword, c.ViewerUsername, c.ViewerPassword, c.CORSOrigin = "", "", "", "", ""
	})
	got, _, _ := runAll(t, s)
	want := map[string]Status{
		CheckHealth: StatusPass, CheckSecurityHeaders: StatusPass, CheckTLS: StatusSkip, CheckLogin: StatusSkip,
		CheckRBAC: StatusSkip, CheckRefreshRotation: StatusSkip, CheckCORS: StatusSkip, CheckSQLInjection: StatusSkip,
		CheckErrorLeaks: StatusPass, CheckRegistrationSecret: StatusPass, CheckMetricsFreshness: StatusSkip,
		CheckSQLMetricsVolume: StatusSkip, CheckSQLPasswordHashes: StatusSkip, CheckRateLimit: StatusPass,
	}
	for name, status := range want {
		if got[name].Status != status {
			t.Errorf("%s: %s (%s), want %s", name, got[name].Status, got[name].Message, status)
		}
	}
	if !strings.Contains(got[CheckLogin].Message, "PGACTL_USERNAME") || !strings.Contains(got[CheckCORS].Message, "PGACTL_CORS_ORIGIN") {
		t.Errorf("skips must say how to enable the check: %q, %q", got[CheckLogin].Message, got[CheckCORS].Message)
	}
}

func TestWithoutCollector(t *testing.T) {
	// A server without collectors: RBAC is still probed (on /api/v1/users, which always exists);
	// metrics freshness has nothing to look at and says how to change that.
	fake := newFakeAPI(fakeOpts{})
	srv := httptest.NewServer(noCollectors{fake})
	defer srv.Close()
	s := newSuite(t, fakeTarget{url: srv.URL}, func(c *Config) { c.Only = []string{CheckRBAC, CheckMetricsFreshness} })
	got, order, _ := runAll(t, s)
	if len(order) != 2 {
		t.Fatalf("ran %v", order)
	}
	if got[CheckRBAC].Status != StatusPass {
		t.Errorf("rbac without collectors: %s %q, want a pass", got[CheckRBAC].Status, got[CheckRBAC].Message)
	}
	if r := got[CheckMetricsFreshness]; r.Status != StatusSkip || !strings.Contains(r.Message, "register") {
		t.Errorf("metrics-freshness: %s %q, want a skip saying to register a collector", r.Status, r.Message)
	}
}

type noCollectors struct{ *fakeAPI }

func (n noCollectors) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/v1/collectors" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"collectors": []any{}})
		return
	}
	n.fakeAPI.ServeHTTP(w, r)
}

func TestSelection(t *testing.T) {
	c, err := client.New(client.Options{BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		only    []string
		skip    []string
		want    []string
		wantErr string
	}{
		{name: "all", want: Checks()},
		{name: "only", only: []string{CheckRateLimit, CheckHealth}, want: []string{CheckHealth, CheckRateLimit}},
		{name: "skip", skip: []string{CheckRateLimit}, want: Checks()[:len(Checks())-1]},
		{name: "only and skip", only: []string{CheckHealth, CheckLogin}, skip: []string{CheckLogin}, want: []string{CheckHealth}},
		{name: "unknown", skip: []string{"rate-limits"}, wantErr: `unknown check "rate-limits"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Client: c, Only: tt.only, Skip: tt.skip})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(s.Selected(), ",") != strings.Join(tt.want, ",") {
				t.Errorf("selected %v, want %v", s.Selected(), tt.want)
			}
		})
	}
	if _, err := New(Config{Client: c, AdminUsername: "a"}); err == nil {
		t.Error("an admin username without a password must be refused")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a suite without a client must be refused")
	}
	for _, n := range Checks() {
		if Describe(n) == "" {
			t.Errorf("check %s has no description", n)
		}
	}
}

func TestRunAdapter(t *testing.T) {
	target := startFake(t, fakeOpts{noFrameOptions: true}, plainHTTP)
	s := newSuite(t, target, func(c *Config) { c.Only = []string{CheckHealth, CheckSecurityHeaders, CheckTLS} })
	var buf bytes.Buffer
	failed, err := s.Run(context.Background(), &buf)
	if err != nil || failed != 1 {
		t.Fatalf("Run = %d, %v", failed, err)
	}
	out := buf.String()
	for _, want := range []string{"PASS  health", "FAIL  security-headers", "SKIP  tls-certificate", "3 checks in", "1 passed, 1 failed, 1 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("the adapter must not colour its log")
	}
}

func TestWaitHealthy(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		target := startFake(t, fakeOpts{}, plainHTTP)
		c, _ := client.New(client.Options{BaseURL: target.url})
		if err := WaitHealthy(context.Background(), c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unreachable keeps the cause", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c, _ := client.New(client.Options{BaseURL: "http://" + addr})
		err := WaitHealthy(context.Background(), c, 600*time.Millisecond)
		if !errors.Is(err, client.ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		target := startFake(t, fakeOpts{healthStatus: "unhealthy"}, plainHTTP)
		c, _ := client.New(client.Options{BaseURL: target.url})
		err := WaitHealthy(context.Background(), c, 600*time.Millisecond)
		if err == nil || errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "unhealthy") {
			t.Fatalf("err = %v, want an unhealthy status error", err)
		}
	})
}
