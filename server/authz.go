package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
)

// principal is an authenticated caller: a user (access token) or a collector.
type principal struct {
	kind    auth.Kind
	id      string // user id or collector id
	name    string // username (users only)
	role    string // users only
	tokenID string
}

func (p *principal) key() string {
	if p.kind == auth.KindCollector {
		return "collector:" + p.id
	}
	return "user:" + p.id
}

// actor is how the audit log names the principal.
func (p *principal) actor() string {
	if p.kind == auth.KindCollector {
		return "collector:" + p.id
	}
	return "user:" + p.name
}

var roleRank = map[string]int{api.RoleViewer: 1, api.RoleOperator: 2, api.RoleAdmin: 3}

// atLeast reports whether role grants min (admin > operator > viewer).
func atLeast(role, min string) bool { return roleRank[role] >= roleRank[min] && roleRank[role] > 0 }

// authenticate returns the caller's principal, or writes the 401. Collector tokens are also checked
// against the store on every request, so deregistration revokes them at once.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	p, ok := s.authenticateToken(w, r)
	if !ok || p.kind != auth.KindCollector {
		return p, ok
	}
	active, err := s.store.CollectorTokenActive(r.Context(), p.id, p.tokenID)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "collector_token_active", err))
		return nil, false
	}
	if !active {
		s.authFailure("revoked_token")
		writeErr(w, newError(http.StatusUnauthorized, codeTokenRevoked, "collector token revoked"))
		return nil, false
	}
	return p, true
}

// authenticateToken is authenticate without the store's check of a collector token.
func (s *Server) authenticateToken(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	info := infoOf(r)
	switch {
	case !info.bearer:
		writeErr(w, newError(http.StatusUnauthorized, codeUnauthorized, "missing bearer token (Authorization: Bearer <token>)"))
		return nil, false
	case errors.Is(info.tokenErr, auth.ErrTokenExpired):
		s.authFailure("expired_token")
		writeErr(w, newError(http.StatusUnauthorized, codeTokenExpired, "token expired"))
		return nil, false
	case info.principal == nil:
		s.authFailure("invalid_token")
		writeErr(w, newError(http.StatusUnauthorized, codeInvalidToken, "invalid token"))
		return nil, false
	}
	return info.principal, true
}

type principalHandler func(w http.ResponseWriter, r *http.Request, p *principal)

// userOnly admits user access tokens whose role grants min.
func (s *Server) userOnly(min string, h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if p.kind != auth.KindAccess {
			s.deny(w, r, p, min, "collector tokens may only push metrics and read their own configuration")
			return
		}
		if !atLeast(p.role, min) {
			s.deny(w, r, p, min, "requires role "+min+" or higher")
			return
		}
		h(w, r, p)
	}
}

// collectorPush admits collector tokens to the push, whose own store statement checks that the
// token is the collector's current one (store.IngestFor): one round trip fewer on every push.
func (s *Server) collectorPush(h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticateToken(w, r)
		if !ok {
			return
		}
		if p.kind != auth.KindCollector {
			s.deny(w, r, p, "collector", "this endpoint needs a collector token")
			return
		}
		if s.lacksClientCert(r) {
			s.deny(w, r, p, "client certificate", errNoClientCert.Error()+" for collectors (mutual TLS)")
			return
		}
		h(w, r, p)
	}
}

// lacksClientCert: require_collector_cert is set and the connection brought no verified client
// certificate.
func (s *Server) lacksClientCert(r *http.Request) bool {
	return s.cfg.TLS.RequireCollectorCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0)
}

// deny answers 403 and audits the role denial.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, p *principal, required, msg string) {
	_ = s.audit(r, p.actor(), "role_denied", r.Method+" "+r.URL.Path, false, map[string]any{
		"required": required, "role": p.role, "token": p.kind.String(),
	})
	writeErr(w, newError(http.StatusForbidden, codeForbidden, "%s", msg))
}

// audit appends an audit entry. It survives the client hanging up (a login's record must not depend
// on the client waiting). Whatever the request held, the entry is written: every text is made
// storable first (auditText). A store failure is logged, counted in
// pganalytics_api_audit_failures_total and returned, for callers that must not go on without
// their entry (auditFirst).
func (s *Server) audit(r *http.Request, actor, action, target string, success bool, detail map[string]any) error {
	e := api.AuditEntry{
		At: time.Now().UTC(), Actor: auditText(actor, 256), Action: action, Target: auditText(target, 256),
		IP: infoOf(r).ip.String(), Success: success,
	}
	if detail != nil {
		for k, v := range detail {
			if str, ok := v.(string); ok {
				detail[k] = auditText(str, 512)
			}
		}
		b, err := json.Marshal(detail)
		if err == nil {
			e.Detail = b
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.store.Audit(ctx, e); err != nil {
		s.metrics.auditFailures.WithLabelValues(action).Inc()
		s.dbError(ctx, "audit", err)
		return err
	}
	return nil
}

// auditFirst records a security-relevant change before it is made, so that no change happens
// without its entry: when the entry cannot be written it answers 503 and returns false, and the
// caller does nothing. A change that then fails gets a second entry (auditFailed).
func (s *Server) auditFirst(w http.ResponseWriter, r *http.Request, actor, action, target string, detail map[string]any) bool {
	if err := s.audit(r, actor, action, target, true, detail); err != nil {
		writeErr(w, newError(http.StatusServiceUnavailable, codeDatabaseUnavailable,
			"the audit log cannot be written, so the change was not made: retry later"))
		return false
	}
	return true
}

// auditFailed follows an auditFirst entry whose change could not be made.
func (s *Server) auditFailed(r *http.Request, actor, action, target string, e *httpError) {
	_ = s.audit(r, actor, action, target, false, map[string]any{"reason": "not made: " + e.message})
}

// auditText makes s storable whatever a client put in it: valid UTF-8, NUL (which PostgreSQL text
// cannot hold) spelt as \x00, at most n bytes. Nothing is dropped that could hide what was tried.
func auditText(s string, n int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", `\x00`)
	}
	return truncate(strings.ToValidUTF8(s, "\uFFFD"), n)
}

func (s *Server) authFailure(reason string) {
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.stats.authFailure(time.Now())
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
