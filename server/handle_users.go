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
	u, err := s.store.CreateUser(ctx, req.Username, hash, req.Role)
	if errors.Is(err, store.ErrConflict) {
		writeErr(w, newError(http.StatusConflict, codeConflict, "user %q already exists", req.Username))
		return
	}
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "create_user", err))
		return
	}
	s.audit(r, p.actor(), "user_created", "user:"+u.Username, true, map[string]string{"role": u.Role})
	writeJSON(w, http.StatusCreated, u)
}

// handleDeleteUser is DELETE /api/v1/users/{id} (admin). Deleting oneself is refused so the last
// admin cannot lock everyone out by accident.
func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request, p *principal) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if id == p.id {
		writeErr(w, newError(http.StatusConflict, codeConflict, "you cannot delete your own user"))
		return
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, id)
	if err == nil {
		err = s.store.DeleteUser(ctx, id)
	}
	if err != nil {
		writeErr(w, s.storeFailure(ctx, "delete_user", err))
		return
	}
	s.audit(r, p.actor(), "user_deleted", "user:"+u.Username, true, nil)
	w.WriteHeader(http.StatusNoContent)
}
