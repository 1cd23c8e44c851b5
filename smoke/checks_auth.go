package smoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

func checkLogin(ctx context.Context, e *env) outcome {
	if o, ok := e.needAdmin(); !ok {
		return o
	}
	tp, err := e.anon.Login(ctx, e.cfg.AdminUsername, e.cfg.AdminPassword)
	if err != nil {
		return fail("valid login of %q: %v", e.cfg.AdminUsername, err)
	}
	switch {
	case tp.AccessToken == "" || tp.RefreshToken == "":
		return fail("login answer lacks access_token or refresh_token: fix the API's login handler")
	case !strings.EqualFold(tp.TokenType, "Bearer"):
		return fail("login token_type is %q, want Bearer: fix the API's login handler", tp.TokenType)
	case tp.ExpiresIn <= 0:
		return fail("login expires_in is %d, want > 0: fix the API's login handler", tp.ExpiresIn)
	case tp.Role != api.RoleAdmin:
		return fail("user %q has role %q: PGACTL_USERNAME must name an admin", e.cfg.AdminUsername, tp.Role)
	}
	// Best effort: do not leave a live refresh token behind.
	_ = e.anon.WithToken(tp.AccessToken).Logout(ctx, tp.RefreshToken)

	wrongPw, err := loginStatus(ctx, e.anon, e.cfg.AdminUsername, e.cfg.AdminPassword+"-smoke-wrong")
	if err != nil {
		return fail("login with a wrong password: %v", err)
	}
	unknown, err := loginStatus(ctx, e.anon, "smoke-no-such-user-"+randomHex(4), "smoke-wrong-password")
	if err != nil {
		return fail("login of an unknown user: %v", err)
	}
	for _, r := range []struct {
		what string
		err  *client.APIError
	}{{"a wrong password", wrongPw}, {"an unknown user", unknown}} {
		if r.err == nil {
			return fail("login with %s succeeded: the API accepts bad credentials", r.what)
		}
		if r.err.Status != http.StatusUnauthorized {
			return fail("login with %s answered %d, want 401: fix the API's login handler", r.what, r.err.Status)
		}
	}
	if wrongPw.Code != unknown.Code || wrongPw.Message != unknown.Message {
		return fail("a wrong password (%q) and an unknown user (%q) get different errors: use one generic message so usernames cannot be enumerated", wrongPw.Message, unknown.Message)
	}
	return pass("admin %q logged in (role admin, expires in %ds); bad credentials get one generic 401", e.cfg.AdminUsername, tp.ExpiresIn)
}

// loginStatus tries a login that should fail and returns its *APIError (nil when it succeeded).
func loginStatus(ctx context.Context, c *client.Client, username, password string) (*client.APIError, error) {
	_, err := c.Login(ctx, username, password)
	if err == nil {
		return nil, nil
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		return apiErr, nil
	}
	return nil, err
}

func checkRBAC(ctx context.Context, e *env) outcome {
	if o, ok := e.needAdmin(); !ok {
		return o
	}
	if e.cfg.ViewerUsername == "" {
		return skip("no viewer credentials: set PGACTL_VIEWER_USERNAME and PGACTL_VIEWER_PASSWORD")
	}
	// GET /api/v1/users is admin-only and exists on every deployment (the admin is a user).
	tp, err := e.anon.Login(ctx, e.cfg.ViewerUsername, e.cfg.ViewerPassword)
	if err != nil {
		return fail("viewer login of %q: %v: check PGACTL_VIEWER_USERNAME/PGACTL_VIEWER_PASSWORD", e.cfg.ViewerUsername, err)
	}
	viewer := e.anon.WithToken(tp.AccessToken)
	defer func() { _ = viewer.Logout(ctx, tp.RefreshToken) }()
	if tp.Role != api.RoleViewer {
		return fail("user %q has role %q: PGACTL_VIEWER_USERNAME must name a viewer", e.cfg.ViewerUsername, tp.Role)
	}
	_, err = viewer.Users(ctx)
	var apiErr *client.APIError
	switch {
	case err == nil:
		return fail("viewer %q listed /api/v1/users (200): the user endpoints must require the admin role", e.cfg.ViewerUsername)
	case !errors.As(err, &apiErr):
		return fail("GET /api/v1/users as viewer: %v", err)
	case apiErr.Status != http.StatusForbidden:
		return fail("viewer on /api/v1/users got %d, want 403: fix the API's role check", apiErr.Status)
	}
	if _, err := e.admin.Users(ctx); err != nil {
		return fail("admin on /api/v1/users: %v, want 200: fix the users handler", err)
	}
	return pass("viewer 403, admin 200 on /api/v1/users")
}

func checkRefreshRotation(ctx context.Context, e *env) outcome {
	if o, ok := e.needAdmin(); !ok {
		return o
	}
	first, err := e.anon.Login(ctx, e.cfg.AdminUsername, e.cfg.AdminPassword)
	if err != nil {
		return fail("login: %v", err)
	}
	second, err := e.anon.Refresh(ctx, first.RefreshToken)
	if err != nil {
		return fail("refresh with a fresh refresh token: %v: fix the API's refresh handler", err)
	}
	defer func() { _ = e.anon.WithToken(second.AccessToken).Logout(ctx, second.RefreshToken) }()
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		return fail("refresh did not rotate the refresh token: issue a new one and revoke the old")
	}
	if second.AccessToken == "" {
		return fail("refresh answer lacks access_token: fix the API's refresh handler")
	}
	_, err = e.anon.Refresh(ctx, first.RefreshToken)
	var apiErr *client.APIError
	switch {
	case err == nil:
		return fail("the old refresh token still works after rotation: revoke it when it is used")
	case !errors.As(err, &apiErr):
		return fail("reuse of the old refresh token: %v", err)
	case apiErr.Status != http.StatusUnauthorized && apiErr.Status != http.StatusForbidden:
		return fail("reuse of the old refresh token answered %d, want 401: fix the API's refresh handler", apiErr.Status)
	}
	return pass("refresh rotated the pair; the old refresh token got %d", apiErr.Status)
}

func checkRegistrationSecret(ctx context.Context, e *env) outcome {
	const path = client.APIPrefix + "/collectors/register"
	body := []byte(`{"name":"smoke-probe","hostname":"smoke.invalid"}`)
	for _, probe := range []struct {
		what   string
		secret string
	}{
		{"a wrong secret", "smoke-wrong-" + randomHex(16)},
		{"no secret", ""},
	} {
		h := http.Header{"Content-Type": {"application/json"}}
		if probe.secret != "" {
			h.Set("X-Registration-Secret", probe.secret)
		}
		resp, err := e.anon.Do(ctx, client.RawRequest{Method: http.MethodPost, Path: path, Header: h, Body: body})
		if err != nil {
			return fail("POST %s: %v", path, err)
		}
		if resp.Status != http.StatusUnauthorized && resp.Status != http.StatusForbidden {
			if resp.Status >= 200 && resp.Status < 300 {
				return fail("registration with %s was accepted (%d): the API must check X-Registration-Secret; delete the smoke-probe collector", probe.what, resp.Status)
			}
			return fail("registration with %s answered %d, want 401 or 403: fix the registration handler", probe.what, resp.Status)
		}
	}
	return pass("wrong and missing registration secrets refused")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
