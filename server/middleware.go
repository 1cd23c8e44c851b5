package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/server/auth"
)

// reqInfo travels in the request context from the outermost middleware inward; inner layers fill in
// what they learn (route, principal) so the outer layer can log and measure it.
type reqInfo struct {
	id        string
	ip        netip.Addr
	route     string     // ServeMux pattern; "" while unmatched
	bearer    bool       // an Authorization: Bearer header was present
	principal *principal // verified bearer token (signature, audience, expiry), nil otherwise
	tokenErr  error      // why the presented bearer token failed verification
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// statusWriter records the status and size of a response. Unwrap lets http.ResponseController reach
// the connection (flush, write deadlines) for the event stream.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID keeps a well-formed incoming X-Request-ID (a load balancer's) and makes one otherwise.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); requestIDPattern.MatchString(id) {
		return id
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// instrument is the outermost layer: request id, security headers, panic recovery, access log,
// request metrics and the per-minute statistics.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{id: requestID(r), ip: s.proxies.clientIP(r)}
		h := w.Header()
		h.Set("X-Request-ID", info.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if s.draining.Load() {
			h.Set("Connection", "close") // reconnect, through the load balancer, to a server that stays
		}
		if s.tlsEnabled || s.proxies.viaTrustedHTTPS(r) {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		sw := &statusWriter{ResponseWriter: w}
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "request_id", info.id, "route", info.route, "panic", v, "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeErr(sw, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
				}
			}
			s.finish(r, info, sw, time.Since(start))
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)))
	})
}

func (s *Server) finish(r *http.Request, info *reqInfo, sw *statusWriter, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := info.route
	if route == "" {
		route = "unmatched"
	}
	s.metrics.duration.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
	s.stats.observe(time.Now(), d, status, route != routeStream)
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		// A refusal the server chose (busy, shutting down, the database away: logged on its own).
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	case status < 400 && (route == routeHealth || route == routeLive || route == routeReady || route == routePrometheus),
		status == http.StatusTooManyRequests:
		// Probes and scrapes would drown everything else, and a flood of refused requests must not
		// become a flood of log lines (pganalytics_api_rate_limited_total counts them).
		level = slog.LevelDebug
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", math.Round(float64(d.Microseconds()))/1000),
		slog.Int64("bytes", sw.bytes),
		slog.String("ip", info.ip.String()),
	}
	if info.principal != nil {
		attrs = append(attrs, slog.String("principal", info.principal.actor()))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// cors answers preflights for allowed origins and marks allowed origins' responses readable.
// Another origin gets no CORS header at all, so the browser refuses it.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := s.origins[origin]
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !s.admit(w, r) {
				return
			}
			if !allowed {
				writeErr(w, newError(http.StatusForbidden, codeCORSDenied, "origin not allowed"))
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding, X-Registration-Secret, X-Request-ID")
			h.Set("Access-Control-Max-Age", "600")
			h.Add("Vary", "Origin")
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, Retry-After")
			h.Add("Vary", "Origin")
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimit admits every request through its bucket before anything else runs, except the
// liveness and readiness probes: a load balancer probing often, or several probing from one
// address, must never take a healthy server out of rotation with a 429.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isProbe(r) || s.admit(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// isProbe reports a liveness or readiness probe (exact paths, GET or HEAD only).
func isProbe(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == pathLive || r.URL.Path == pathReady
}

// admit identifies the caller from its bearer token (signature, audience and expiry only: no
// database) and takes a token from that principal's bucket, or from the client IP's bucket when
// there is no valid token. It writes the 429 itself.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	info := infoOf(r)
	key, scope := "ip:"+info.ip.String(), "ip"
	if tok, ok := bearerToken(r); ok {
		info.bearer = true
		kind, claims, err := s.tokens.Identify(tok)
		if err != nil {
			info.tokenErr = err
		} else {
			p := principalOf(kind, claims)
			info.principal = &p
			key, scope = p.key(), kind.String()
		}
	}
	d := s.limiter.Allow(r.Context(), key, time.Now())
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	if d.Allowed {
		return true
	}
	s.metrics.rateLimited.WithLabelValues(scope).Inc()
	s.stats.rateLimited(time.Now())
	secs := int(math.Ceil(d.RetryAfter.Seconds()))
	h.Set("Retry-After", strconv.Itoa(secs))
	writeErr(w, newError(http.StatusTooManyRequests, codeRateLimited,
		"rate limit of %d requests per minute exceeded; retry in %d s", d.Limit, secs))
	return false
}

// bearerToken extracts the token of an "Authorization: Bearer …" header (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// jsonUnmatched turns ServeMux's own plain-text 404 and 405 answers into JSON errors. The routes set
// info.route before writing anything, so a response written while it is still empty comes from the
// mux itself.
type jsonUnmatched struct {
	http.ResponseWriter
	info     *reqInfo
	replaced bool
}

func (w *jsonUnmatched) WriteHeader(code int) {
	if w.info.route != "" || (code != http.StatusNotFound && code != http.StatusMethodNotAllowed) {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	if code == http.StatusNotFound {
		writeErr(w.ResponseWriter, newError(code, codeNotFound, "no such endpoint"))
		return
	}
	writeErr(w.ResponseWriter, newError(code, codeMethodNotAllowed, "method not allowed (allowed: %s)", w.Header().Get("Allow")))
}

func (w *jsonUnmatched) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *jsonUnmatched) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// principalOf builds the caller's identity from verified claims.
func principalOf(kind auth.Kind, c *auth.Claims) principal {
	return principal{kind: kind, id: c.Subject, name: c.Name, role: c.Role, tokenID: c.ID}
}
