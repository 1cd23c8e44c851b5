package server

import (
	"errors"
	"net/http"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/store"
)

// ValidateNewUser checks a new user's name and role (shared with `pganalytics-api user add`); the
// password policy is auth.CheckPasswordPolicy.
func ValidateNewUser(username, role string) error {
	if !usernamePattern.MatchString(username) {
		return errors.New("username must be 1-64 characters of [A-Za-z0-9_.@-] starting with a letter or digit")
	}
	if _, ok := roleRank[role]; !ok {
		return errors.New("role must be admin, operator or viewer")
	}
	return nil
}

// handleListUsers is GET /api/v1/users (admin).
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	users, err := s.store.ListUsers(r.Context())
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "list_users", err))
		return
	}
	if users == nil {
		users = []api.User{}
	}
	writeJSON(w, http.StatusOK, api.UsersResponse{Users: users})
}

// handleCreateUser is POST /api/v1/users (admin).
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.CreateUserRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	err := ValidateNewUser(req.Username, req.Role)
	if err == nil {
		err = auth.CheckPasswordPolicy(req.Password)
	}
	if err != nil {
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "%s", err))
		return
	}
	ctx := r.Context()
	hash, err := s.hasher.Hash(ctx, req.Password)
	if err != nil {
		writeErr(w, newError(http.StatusServiceUnavailable, codeInternal, "could not hash the password, retry"))
		return
	}
	target := "user:" + req.Username
	if !s.auditFirst(w, r, p.actor(), "user_created", target, map[string]any{"role": req.Role}) {
		return
	}
	u, err := s.store.CreateUser(ctx, req.Username, hash, req.Role)
	if err != nil {
		e := s.storeFailure(ctx, "create_user", err)
		if errors.Is(err, store.ErrConflict) {
			e = newError(http.StatusConflict, codeConflict, "user %q already exists", req.Username)
		}
		s.auditFailed(r, p.actor(), "user_created", target, e)
		writeErr(w, e)
		return
	}
	writeJSON(w, http.StatusCreated, u)
}

// handleDeleteUser is DELETE /api/v1/users/{id} (admin). Deleting oneself is refused, and so is
// deleting the last admin (by anyone, however the id is spelt), so that nobody can lock everyone out.
func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request, p *principal) {
	raw, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	id, ok := store.CanonicalID(raw)
	if !ok {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "not found"))
		return
	}
	if self, _ := store.CanonicalID(p.id); self == id {
		writeErr(w, newError(http.StatusConflict, codeConflict, "you cannot delete your own user"))
		return
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "user_by_id", err))
		return
	}
	target := "user:" + u.Username
	if !s.auditFirst(w, r, p.actor(), "user_deleted", target, map[string]any{"role": u.Role}) {
		return
	}
	if err := s.store.DeleteUser(ctx, u.ID); err != nil {
		e := s.storeFailure(ctx, "delete_user", err)
		if errors.Is(err, store.ErrLastAdmin) {
			e = newError(http.StatusConflict, codeConflict, "%s is the last admin: make another admin first", u.Username)
		}
		s.auditFailed(r, p.actor(), "user_deleted", target, e)
		writeErr(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
