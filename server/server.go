// Package server is pganalytics-api's HTTP layer: authentication (JWT, argon2id), RBAC, rate
// limiting, security headers, CORS, TLS, the audit trail, metric ingest, the live replication views
// and event stream, and the server's own Prometheus metrics. The store behind it is server/store.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pganalytics/pganalytics/deploy"
	"github.com/pganalytics/pganalytics/internal/wait"
	"github.com/pganalytics/pganalytics/server/alerting"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/ratelimit"
	"github.com/pganalytics/pganalytics/server/remotewrite"
	"github.com/pganalytics/pganalytics/server/store"
)

// Options are New's inputs.
type Options struct {
	Config  *config.Config
	Store   Store
	Logger  *slog.Logger
	Version string
	// Hasher overrides the password hasher (tests use cheap argon2 parameters).
	Hasher *auth.Hasher
	// TLS is the result of LoadTLS when the caller loaded it already; nil loads it here.
	TLS *TLS
}

// ApplyGCLimits sets the Go runtime's soft memory limit to limits.memory_limit_bytes, so that
// the garbage collector works harder before the heap outgrows it (pushes refused by the push
// budget leave garbage behind them), and its target to limits.gc_percent; GOMEMLIMIT and GOGC in
// the environment win. It returns the memory limit in force (-1 for none) and the GC percent.
func ApplyGCLimits(cfg *config.Config, getenv func(string) string) (memoryLimit int64, gcPercent int) {
	gcPercent = debug.SetGCPercent(-1)
	if getenv("GOGC") == "" && cfg.Limits.GCPercent != 0 {
		gcPercent = cfg.Limits.GCPercent
	}
	debug.SetGCPercent(gcPercent)
	if getenv("GOMEMLIMIT") != "" || cfg.Limits.MemoryLimitBytes == 0 {
		if v := debug.SetMemoryLimit(-1); v != math.MaxInt64 {
			return v, gcPercent
		}
		return -1, gcPercent
	}
	debug.SetMemoryLimit(cfg.Limits.MemoryLimitBytes)
	return cfg.Limits.MemoryLimitBytes, gcPercent
}

// Server serves the API. Build it with New and serve it with Run.
type Server struct {
	cfg        *config.Config
	store      Store
	log        *slog.Logger
	version    string
	name       string // identifies this server in the request statistics
	started    time.Time
	tokens     *auth.Tokens
	hasher     *auth.Hasher
	limiter    ratelimit.Admitter
	metrics    *metrics
	stats      *requestStats
	hub        *topologyHub
	shutdown   chan struct{} // closed when the listener shuts down: the runbook streams end
	endStreams sync.Once
	trackWake  chan struct{} // a collector pushed: the topology tracker should look
	pushGate   *pushGate
	gunzips    sync.Pool // *gzip.Reader: each holds a 32 KiB window, reused rather than allocated per push
	throttle   store.ThrottlePolicy
	proxies    trustedProxies
	origins    map[string]bool
	tlsEnabled bool
	tls        *TLS // nil without TLS
	regSecret  [sha256.Size]byte
	handler    http.Handler

	patterns []string // the routes registered, in order (the OpenAPI document must list the same)
	openapi  []byte   // GET /api/v1/openapi.json

	draining   atomic.Bool  // SIGTERM came: readiness fails, responses close their connections
	readyUntil atomic.Int64 // unix nanos until which the last good store ping answers readiness

	rules    atomic.Pointer[alerting.Rules]
	notifier *notifier // nil without Alertmanagers
	remote   *remotewrite.Forwarder

	prometheus     http.Handler
	metricsToken   []byte       // SHA-256 of metrics.bearer_token, nil when /metrics is open
	metricsHandler http.Handler // the metrics listener's, when metrics.listen_addr is set
}

// New checks the configuration, loads the TLS key pair and builds the handler. It does not touch the
// network.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	if cfg == nil || opts.Store == nil {
		return nil, errors.New("server: a configuration and a store are required")
	}
	if err := cfg.ValidateServe(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hasher := opts.Hasher
	if hasher == nil {
		var err error
		if hasher, err = auth.NewHasher(auth.DefaultArgon2, 4); err != nil {
			return nil, err
		}
	}
	name := cfg.ServerName
	if name == "" {
		host, _ := os.Hostname()
		id, err := auth.NewID()
		if err != nil {
			return nil, err
		}
		name = fmt.Sprintf("%s-%s", host, id[:8])
	}
	// The store's buckets are shared by every server on it (the limit holds for the deployment),
	// with this server's own as the fallback; a store without them leaves each server its own.
	shared, _ := opts.Store.(ratelimit.Store)
	limiter := ratelimit.NewShared(shared, ratelimit.New(cfg.RateLimitPerMinute, cfg.Limits.RateLimitBuckets),
		ratelimit.SharedOptions{Logger: log, StoreTimeout: cfg.Limits.RateLimitStoreTimeout.D()})
	m := newMetrics()
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pganalytics_api_rate_limit_fallback_total",
		Help: "Requests whose rate limit this server decided alone because the store's shared buckets did not answer in time.",
	}, func() float64 { return float64(limiter.Fallbacks()) }))
	s := &Server{
		shutdown: make(chan struct{}),
		cfg:      cfg,
		store:    opts.Store,
		log:      log,
		version:  opts.Version,
		name:     name,
		started:  time.Now(),
		tokens: auth.NewTokens([]byte(cfg.JWTSecretKey), auth.TTLs{
			Access: cfg.Auth.AccessTokenTTL.D(), Refresh: cfg.Auth.RefreshTokenTTL.D(), Collector: cfg.Auth.CollectorTokenTTL.D(),
		}, time.Now),
		hasher:     hasher,
		limiter:    limiter,
		metrics:    m,
		stats:      newRequestStats(),
		proxies:    trustedProxies(cfg.TrustedProxyNets),
		origins:    make(map[string]bool),
		tlsEnabled: cfg.TLS.Enabled,
		regSecret:  sha256.Sum256([]byte(cfg.RegistrationSecret)),
	}
	for _, o := range cfg.CORSAllowedOrigins {
		s.origins[o] = true
	}
	s.tls = opts.TLS
	if s.tls == nil {
		var err error
		if s.tls, err = LoadTLS(cfg); err != nil {
			return nil, err
		}
	}
	s.trackWake = make(chan struct{}, 1)
	s.hub = newTopologyHub(s.store.Replication, s.store.Event,
		func(err error) { s.dbError(context.Background(), "replication", err) },
		s.metrics.sseDropped.Inc, cfg.Limits.StreamsMax, cfg.Limits.StreamsPerPrincipal)
	s.throttle = store.ThrottlePolicy{
		PerAccountAddress: cfg.Auth.LoginMaxFailures, PerAddress: cfg.Auth.LoginMaxFailuresPerAddress,
		PerAccount: cfg.Auth.LoginMaxFailuresPerAccount, Window: cfg.Auth.LoginLockout.D(),
	}
	s.pushGate = newPushGate(cfg.Limits.PushPerCollector, cfg.Limits.PushMaxDecompressedBytes, cfg.Limits.PushMemoryBytes, s.metrics.pushMemory)
	rules, err := loadRules(cfg.Alerting.RulesFile)
	if err != nil {
		return nil, err
	}
	s.rules.Store(rules)
	endpoints, err := remoteWriteEndpoints(cfg.RemoteWrite)
	if err != nil {
		return nil, err
	}
	if s.remote, err = remotewrite.New(endpoints, s.metrics.reg, s.log); err != nil {
		return nil, err
	}
	if a := cfg.Alerting; len(a.AlertmanagerURLs) > 0 {
		generator := ""
		if a.ExternalURL != "" {
			generator = strings.TrimSuffix(a.ExternalURL, "/") + "/api/v1/alerts"
		}
		s.notifier = newNotifier(a.AlertmanagerURLs, a.ResendInterval.D(), generator, a.RunbookBaseURL,
			func(url string, n int, err error) {
				result := "sent"
				if err != nil {
					result = "failed"
					s.log.Warn("alert delivery failed; retried at the next evaluation", "alertmanager", url, "alerts", n, "err", err)
				}
				s.metrics.notifications.WithLabelValues(url, result).Add(float64(n))
			})
	}
	s.prometheus = promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: promErrorLog{s.log}})
	if t := cfg.Metrics.BearerToken; t != "" {
		sum := sha256.Sum256([]byte(t))
		s.metricsToken = sum[:]
	}
	doc, err := openAPIDocument(s.version)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	s.openapi = doc
	s.handler = s.instrument(s.cors(s.rateLimit(s.routes())))
	if cfg.Metrics.ListenAddr != "" {
		s.metricsHandler = s.instrument(s.metricsRoutes())
	}
	return s, nil
}

// Name identifies this server in the request statistics.
func (s *Server) Name() string { return s.name }

// Run serves on ln (wrapped in TLS when enabled) and runs the background work: the topology listener
// feeding the event streams, the per-minute request statistics and hourly store maintenance. When ctx
// ends it shuts down gracefully: no new connections, event streams closed, in-flight requests (pushes
// in particular) finished within the shutdown timeout, statistics flushed.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls.Config())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.hub.close)
	srv.RegisterOnShutdown(func() { s.endStreams.Do(func() { close(s.shutdown) }) })
	var msrv *http.Server
	if s.metricsHandler != nil {
		mln, err := net.Listen("tcp", s.cfg.Metrics.ListenAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		msrv = &http.Server{Handler: s.metricsHandler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: time.Minute, MaxHeaderBytes: 16 << 10, ErrorLog: srv.ErrorLog}
		s.log.Info("serving metrics", "addr", mln.Addr().String())
		go func() { _ = msrv.Serve(mln) }()
	}

	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var wg sync.WaitGroup
	wg.Go(func() { s.hub.run(bg) })
	wg.Go(func() { s.listenTopology(bg) })
	wg.Go(func() { s.statsLoop(bg) })
	wg.Go(func() { s.maintainLoop(bg) })
	wg.Go(func() { s.expireRateLimitsLoop(bg) })
	wg.Go(func() { s.remote.Run(bg) })
	wg.Go(func() { s.store.RunAsLeader(bg, store.RollupsLockID, rollupEvery, s.rollupLoop) })
	if s.tls != nil {
		wg.Go(func() { s.tls.watch(bg, s.log) })
	}
	wg.Go(func() {
		s.store.RunAsLeader(bg, store.AlertingLockID, s.cfg.Alerting.EvaluationInterval.D(), s.evaluateLoop)
	})
	wg.Go(func() { s.store.RunAsLeader(bg, store.TopologyLockID, trackEvery, s.trackLoop) })

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.tls != nil, "environment", s.cfg.Environment,
		"server", s.name, "version", s.version)

	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		s.drain(served)
		s.log.Info("shutting down", "timeout", s.cfg.Limits.ShutdownTimeout.D().String())
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.ShutdownTimeout.D())
		err = srv.Shutdown(sctx)
		cancel()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	if msrv != nil {
		_ = msrv.Close()
	}
	stopBackground()
	wg.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.flushStats(fctx, time.Now())
	cancel()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// drain fails the readiness check and keeps serving for limits.drain_delay, so that load balancers
// stop sending new requests here before the listener closes; responses meanwhile ask clients to
// reconnect (Connection: close), which through a load balancer lands them on another server.
func (s *Server) drain(served chan error) {
	s.draining.Store(true)
	d := s.cfg.Limits.DrainDelay.D()
	if d <= 0 {
		return
	}
	s.log.Info("draining: readiness fails, still serving", "for", d.String())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case err := <-served: // the listener died meanwhile: nothing left to drain
		go func() { served <- err }()
	}
}

// reconnectNotifier is an optional store capability: ListenTopology that also reports when it
// resumed after a lost connection (notifications may have been missed meanwhile).
type reconnectNotifier interface {
	ListenTopologyWithReconnect(ctx context.Context, fn func(collectorID string), onReconnect func()) error
}

// listenTopology keeps the store's LISTEN running for the event streams; the store reconnects by
// itself and only returns when ctx ends (or on a fatal error, retried here after a pause). After a
// reconnect every stream gets every collector's current topology again.
func (s *Server) listenTopology(ctx context.Context) {
	listen := s.store.ListenTopology
	if rn, ok := s.store.(reconnectNotifier); ok {
		listen = func(ctx context.Context, fn func(string)) error {
			return rn.ListenTopologyWithReconnect(ctx, fn, func() { s.hub.notify(allCollectors) })
		}
	}
	notified := func(payload string) {
		if id, ok := store.EventID(payload); ok {
			s.hub.notifyEvent(id)
			return
		}
		s.hub.notify(payload)
		s.pokeTracker()
	}
	for {
		err := listen(ctx, notified)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.dbError(ctx, "listen_topology", err)
		}
		if !wait.Sleep(ctx, 5*time.Second) {
			return
		}
	}
}

// statsFlushEvery is how often the running minute's request statistics are written.
const statsFlushEvery = 15 * time.Second

func (s *Server) statsLoop(ctx context.Context) {
	t := time.NewTicker(statsFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.flushStats(ctx, now)
		}
	}
}

// maintainLoop runs store maintenance (partitions ahead, retention) at start and hourly.
func (s *Server) maintainLoop(ctx context.Context) {
	for {
		if err := s.store.Maintain(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.dbError(ctx, "maintain", err)
		}
		if !wait.Sleep(ctx, time.Hour) {
			return
		}
	}
}

// rollupEvery is how often the rollups are brought up to date (store.MaintainRollups).
const rollupEvery = 30 * time.Second

// rollupLoop maintains the rollups while this server holds their lock: every rollupEvery, and
// every second while a backfill is behind.
func (s *Server) rollupLoop(ctx context.Context) {
	for {
		p, err := s.store.MaintainRollups(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			s.dbError(ctx, "rollups", err)
		}
		pause := rollupEvery
		if err == nil && p.Behind {
			pause = time.Second // a backfill: go on, leaving the store room for ingest
		}
		if !wait.Sleep(ctx, pause) {
			return
		}
	}
}

// rateLimitExpiry is how often expired shared rate-limit buckets are deleted: a bucket is useful
// for at most a minute, and every new client address adds one.
const rateLimitExpiry = time.Minute

// expireRateLimitsLoop deletes expired shared buckets; every server does (a cheap, idempotent
// DELETE), so no leader is needed.
func (s *Server) expireRateLimitsLoop(ctx context.Context) {
	for wait.Sleep(ctx, rateLimitExpiry) {
		if _, err := s.store.DeleteExpiredRateLimits(ctx); err != nil && ctx.Err() == nil {
			s.dbError(ctx, "rate_limits", err)
		}
	}
}

// loadRules reads the alert rules file, the shipped rules when path is empty.
func loadRules(path string) (*alerting.Rules, error) {
	if path == "" {
		return alerting.Parse("deploy/alerts.toml (built in)", deploy.AlertRules)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	return alerting.Parse(path, data)
}

// ReloadRules reads the alert rules again (SIGHUP). A file that does not load leaves the rules in
// force; the alerts' state carries over (an alert whose rule is gone resolves).
func (s *Server) ReloadRules() error {
	rules, err := loadRules(s.cfg.Alerting.RulesFile)
	if err != nil {
		return err
	}
	s.rules.Store(rules)
	s.log.Info("alert rules reloaded", "rules", len(rules.Rules))
	return nil
}

// evaluateLoop evaluates the alert rules every evaluation_interval while this server holds the
// alerting lock (one server at a time; another takes over when it is gone).
func (s *Server) evaluateLoop(ctx context.Context) {
	s.log.Info("evaluating alert rules", "every", s.cfg.Alerting.EvaluationInterval.D().String())
	t := time.NewTicker(s.cfg.Alerting.EvaluationInterval.D())
	defer t.Stop()
	for {
		if err := s.evaluate(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.metrics.evaluationFailures.Inc()
			s.dbError(ctx, "evaluate_alerts", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// evaluate runs one evaluation: the store's observations against the rules, from the stored state.
func (s *Server) evaluate(ctx context.Context, now time.Time) error {
	start := time.Now()
	obs, err := s.store.Observe(ctx, now)
	if err != nil {
		return err
	}
	prev, err := s.store.LoadAlerts(ctx)
	if err != nil {
		return err
	}
	next := alerting.Evaluate(s.rules.Load(), obs, prev.Alerts, now)
	if err := s.store.SaveAlerts(ctx, now, s.name, next); err != nil {
		return err
	}
	if s.notifier != nil {
		s.notifier.notify(ctx, next, now)
	}
	s.metrics.evaluationSeconds.Observe(time.Since(start).Seconds())
	return nil
}
