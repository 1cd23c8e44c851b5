package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/store"
)

// badCredentials is the one answer to every failed login: unknown user, wrong password, locked
// account. It tells an attacker nothing about which.
var badCredentials = newError(http.StatusUnauthorized, codeInvalidCredentials, "invalid username or password")

const maxUsernameBytes = 64

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// handleLogin is POST /api/v1/auth/login. Failures are counted per (account, address), per
// address and per account (store.RecordLoginFailure): a stranger's guesses lock out the stranger's
// address, not the account; the account's own lock is a last resort that the right password from
// an address it logged in from before still passes. Every failure, locked or not, costs one
// password hash (a dummy one where no hash is checked) and gets the same answer, so neither the
// answer nor its timing tells which usernames exist or which locks are in force.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	ip := infoOf(r).ip.String()
	now := time.Now()
	target := "user:" + req.Username
	refuse := func(reason string, detail map[string]any) {
		s.authFailure(reason)
		writeErr(w, badCredentials)
		_ = http.NewResponseController(w).Flush()
		if detail == nil {
			detail = map[string]any{}
		}
		detail["reason"] = reason
		_ = s.audit(r, "anonymous", "login_failed", target, false, detail)
	}
	// A name no user can have never reaches the store.
	if !usernamePattern.MatchString(req.Username) {
		s.hasher.VerifyDummy(ctx, req.Password)
		refuse("invalid_credentials", nil)
		return
	}
	locks, err := s.store.LoginLocks(ctx, req.Username, ip, now)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "login_locks", err))
		return
	}
	if until := later(locks.AccountAddress, locks.Address); !until.IsZero() {
		s.hasher.VerifyDummy(ctx, req.Password)
		scope := store.ScopeAddress
		if until.Equal(locks.AccountAddress) {
			scope = store.ScopeAccountAddress
		}
		refuse("throttled", map[string]any{"scope": scope, "locked_until": until.UTC()})
		return
	}
	// failed counts the failure, whatever the reason, so that every verified password costs the
	// same work: the answer's timing must not tell a right password refused by a lock.
	failed := func(reason string, detail map[string]any) {
		locked, err := s.store.RecordLoginFailure(context.WithoutCancel(ctx), req.Username, ip, s.throttle, now)
		if err != nil {
			s.dbError(ctx, "record_login_failure", err)
		}
		if len(locked) > 0 {
			if detail == nil {
				detail = map[string]any{}
			}
			detail["locked"], detail["locked_until"] = locked, now.Add(s.throttle.Window).UTC()
		}
		refuse(reason, detail)
	}
	u, err := s.store.UserByUsername(ctx, req.Username)
	if errors.Is(err, store.ErrNotFound) {
		s.hasher.VerifyDummy(ctx, req.Password)
		failed("invalid_credentials", nil)
		return
	}
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "user_by_username", err))
		return
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, req.Password)
	if err != nil {
		if ctx.Err() != nil {
			return // the client hung up while waiting for a hashing slot: nothing was tried
		}
		s.log.Error("verify password", "user", u.Username, "err", err)
	}
	if !ok {
		failed("invalid_credentials", nil)
		return
	}
	if !locks.Account.IsZero() && !locks.KnownAddress {
		failed("locked", map[string]any{"scope": store.ScopeAccount, "locked_until": locks.Account.UTC()})
		return
	}
	if err := s.store.RecordLoginSuccess(ctx, u.ID, u.Username, ip, now); err != nil {
		writeErr(w, s.storeFailure(ctx, "record_login_success", err))
		return
	}
	family, err := auth.NewID()
	if err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
		return
	}
	var detail map[string]any
	if !locks.Account.IsZero() {
		detail = map[string]any{"passed_lock": store.ScopeAccount, "known_address": true}
	}
	if !s.auditFirst(w, r, "user:"+u.Username, "login", "user:"+u.Username, detail) {
		return
	}
	pair, e := s.issuePair(ctx, u.User, family, "")
	if e != nil {
		writeErr(w, e)
		return
	}
	writeJSON(w, http.StatusOK, pair)
}

// later is the later of two times, zero when both are.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// issuePair signs an access token and a refresh token of family; with previous set, the refresh
// token replaces it (rotation) instead of starting the chain.
func (s *Server) issuePair(ctx context.Context, u api.User, family, previous string) (api.TokenPair, *httpError) {
	access, err := s.tokens.IssueAccess(u.ID, u.Username, u.Role)
	if err != nil {
		return api.TokenPair{}, newError(http.StatusInternalServerError, codeInternal, "internal server error")
	}
	refresh, err := s.tokens.IssueRefresh(u.ID, family)
	if err != nil {
		return api.TokenPair{}, newError(http.StatusInternalServerError, codeInternal, "internal server error")
	}
	rt := store.RefreshToken{ID: refresh.ID, UserID: u.ID, FamilyID: family, ExpiresAt: refresh.ExpiresAt}
	if previous == "" {
		err = s.store.CreateRefreshToken(ctx, rt)
	} else {
		err = s.store.RotateRefreshToken(ctx, previous, rt)
	}
	switch {
	case errors.Is(err, store.ErrTokenReused):
		return api.TokenPair{}, newError(http.StatusUnauthorized, codeTokenReused,
			"refresh token already used: every session of this login is now revoked, log in again")
	case errors.Is(err, store.ErrNotFound):
		return api.TokenPair{}, newError(http.StatusUnauthorized, codeInvalidToken, "invalid token")
	case err != nil:
		return api.TokenPair{}, s.storeFailure(ctx, "refresh_token", err)
	}
	return api.TokenPair{
		AccessToken:  access.Token,
		RefreshToken: refresh.Token,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.tokens.TTL(auth.KindAccess) / time.Second),
		Role:         u.Role,
	}, nil
}

// handleRefresh is POST /api/v1/auth/refresh: rotates the pair. Presenting an already rotated
// refresh token revokes the whole family (someone else holds a copy).
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req api.RefreshRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	claims, e := s.verifyRefresh(req.RefreshToken)
	if e != nil {
		writeErr(w, e)
		return
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		s.authFailure("invalid_token")
		writeErr(w, newError(http.StatusUnauthorized, codeInvalidToken, "invalid token"))
		return
	}
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "user_by_id", err))
		return
	}
	pair, e := s.issuePair(ctx, u, claims.Family, claims.ID)
	if e != nil {
		if e.code == codeTokenReused {
			s.authFailure("reused_token")
			_ = s.audit(r, "user:"+u.Username, "refresh_reused", "family:"+claims.Family, false, nil)
		} else if e.status == http.StatusUnauthorized {
			s.authFailure("invalid_token")
		}
		writeErr(w, e)
		return
	}
	writeJSON(w, http.StatusOK, pair)
}

func (s *Server) verifyRefresh(token string) (*auth.Claims, *httpError) {
	if token == "" {
		return nil, newError(http.StatusBadRequest, codeValidation, "refresh_token is required")
	}
	claims, err := s.tokens.Verify(auth.KindRefresh, token)
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		s.authFailure("expired_token")
		return nil, newError(http.StatusUnauthorized, codeTokenExpired, "refresh token expired, log in again")
	case err != nil:
		s.authFailure("invalid_token")
		return nil, newError(http.StatusUnauthorized, codeInvalidToken, "invalid token")
	}
	return claims, nil
}

// handleLogout is POST /api/v1/auth/logout (access token + the refresh token in the body): revokes
// the refresh token's family.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.RefreshRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	claims, e := s.verifyRefresh(req.RefreshToken)
	if e != nil {
		writeErr(w, e)
		return
	}
	if claims.Subject != p.id {
		writeErr(w, newError(http.StatusForbidden, codeForbidden, "the refresh token belongs to another user"))
		return
	}
	if err := s.store.RevokeRefreshToken(r.Context(), claims.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		writeErr(w, s.storeFailure(r.Context(), "revoke_refresh_token", err))
		return
	}
	_ = s.audit(r, p.actor(), "logout", p.actor(), true, nil)
	w.WriteHeader(http.StatusNoContent)
}

var (
	collectorNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	hostnamePattern      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$`)
)

// handleRegister is POST /api/v1/collectors/register with the X-Registration-Secret header. The
// secret is compared as SHA-256 digests in constant time (neither content nor length leaks).
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if s.lacksClientCert(r) {
		_ = s.audit(r, "anonymous", "register_failed", "", false, map[string]any{"reason": "no client certificate"})
		writeErr(w, newError(http.StatusForbidden, codeForbidden, "%s to register (mutual TLS)", errNoClientCert))
		return
	}
	got := sha256.Sum256([]byte(r.Header.Get("X-Registration-Secret")))
	if subtle.ConstantTimeCompare(got[:], s.regSecret[:]) != 1 {
		s.authFailure("invalid_registration_secret")
		_ = s.audit(r, "anonymous", "register_failed", "", false, map[string]any{"reason": "invalid registration secret"})
		writeErr(w, newError(http.StatusUnauthorized, codeInvalidRegistration, "missing or invalid X-Registration-Secret"))
		return
	}
	var req api.RegisterRequest
	refuse := func(e *httpError) {
		_ = s.audit(r, "anonymous", "register_failed", "collector:"+truncate(req.Name, 128), false, map[string]any{"reason": e.message})
		writeErr(w, e)
	}
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		refuse(e)
		return
	}
	if !collectorNamePattern.MatchString(req.Name) {
		refuse(newError(http.StatusBadRequest, codeValidation, "name must be 1-128 characters of [A-Za-z0-9._-] starting with a letter or digit"))
		return
	}
	if !hostnamePattern.MatchString(req.Hostname) {
		refuse(newError(http.StatusBadRequest, codeValidation, "hostname must be 1-253 characters of [A-Za-z0-9._-] starting with a letter or digit"))
		return
	}
	tokenID, err := auth.NewID()
	if err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
		return
	}
	ctx := r.Context()
	c, err := s.store.CreateCollector(ctx, req.Name, req.Hostname, tokenID)
	if errors.Is(err, store.ErrConflict) {
		refuse(newError(http.StatusConflict, codeConflict, "a collector named %q is already registered: deregister it first (DELETE /api/v1/collectors/{id})", req.Name))
		return
	}
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "create_collector", err))
		return
	}
	tok, err := s.tokens.IssueCollector(c.ID, tokenID)
	if err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
		return
	}
	// No token leaves without its entry: a registration that cannot be audited is undone.
	if err := s.audit(r, "collector:"+c.ID, "register", "collector:"+c.Name, true, map[string]any{"hostname": c.Hostname}); err != nil {
		if derr := s.store.DeleteCollector(context.WithoutCancel(ctx), c.ID); derr != nil {
			s.dbError(ctx, "delete_collector", derr)
		}
		writeErr(w, newError(http.StatusServiceUnavailable, codeDatabaseUnavailable,
			"the audit log cannot be written, so the collector was not registered: retry later"))
		return
	}
	writeJSON(w, http.StatusCreated, api.RegisterResponse{
		CollectorID: c.ID, Token: tok.Token, TokenType: "Bearer",
		Name: c.Name, Hostname: c.Hostname, CreatedAt: c.RegisteredAt,
	})
}
