package store_test

import (
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

const unknownID = "6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a11"

func TestUsers(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)

	alice, err := s.CreateUser(ctx, "alice", "$argon2id$hash", api.RoleAdmin)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if alice.ID == "" || alice.Username != "alice" || alice.Role != api.RoleAdmin || alice.CreatedAt.IsZero() {
		t.Fatalf("created %+v", alice)
	}

	t.Run("create", func(t *testing.T) {
		for _, tc := range []struct {
			name, username, hash, role string
			want                       error
		}{
			{"viewer", "bob", "h", api.RoleViewer, nil},
			{"operator", "carol", "h", api.RoleOperator, nil},
			{"duplicate username", "alice", "h", api.RoleViewer, store.ErrConflict},
			{"unknown role", "dave", "h", "root", store.ErrInvalid},
			{"empty username", "", "h", api.RoleViewer, store.ErrInvalid},
			{"empty hash", "erin", "", api.RoleViewer, store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.CreateUser(ctx, tc.username, tc.hash, tc.role)
				wantErr(t, err, tc.want)
			})
		}
	})

	t.Run("lookup", func(t *testing.T) {
		rec, err := s.UserByUsername(ctx, "alice")
		if err != nil || rec.User != alice || rec.PasswordHash != "$argon2id$hash" || rec.FailedLogins != 0 || !rec.LockedUntil.IsZero() {
			t.Fatalf("UserByUsername = %+v, %v", rec, err)
		}
		_, err = s.UserByUsername(ctx, "nobody")
		wantErr(t, err, store.ErrNotFound)

		for _, tc := range []struct {
			name, id string
			want     error
		}{
			{"existing", alice.ID, nil},
			{"unknown", unknownID, store.ErrNotFound},
			{"malformed", "42", store.ErrNotFound},
			{"injection", "' OR 1=1 --", store.ErrNotFound},
			{"almost a uuid", "6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a1z", store.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u, err := s.UserByID(ctx, tc.id)
				wantErr(t, err, tc.want)
				if tc.want == nil && u != alice {
					t.Fatalf("UserByID = %+v", u)
				}
			})
		}
	})

	t.Run("list", func(t *testing.T) {
		users, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range users {
			names = append(names, u.Username)
		}
		if len(names) != 3 || names[0] != "alice" || names[1] != "bob" || names[2] != "carol" {
			t.Fatalf("ListUsers = %v", names)
		}
	})

	t.Run("delete", func(t *testing.T) {
		bob, err := s.UserByUsername(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteUser(ctx, bob.ID), nil)
		wantErr(t, s.DeleteUser(ctx, bob.ID), store.ErrNotFound)
		wantErr(t, s.DeleteUser(ctx, "not-a-uuid"), store.ErrNotFound)
		_, err = s.UserByID(ctx, bob.ID)
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestLoginLockout(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	u, err := s.CreateUser(ctx, "mallory-target", "h", api.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	const lockAfter, lockFor = 3, 15 * time.Minute

	for i := 1; i < lockAfter; i++ {
		until, err := s.RecordLoginFailure(ctx, u.ID, lockAfter, lockFor)
		if err != nil || !until.IsZero() {
			t.Fatalf("failure %d: locked until %v, %v", i, until, err)
		}
	}
	rec, _ := s.UserByUsername(ctx, u.Username)
	if rec.FailedLogins != lockAfter-1 || !rec.LockedUntil.IsZero() {
		t.Fatalf("after %d failures: %+v", lockAfter-1, rec)
	}

	before := time.Now()
	until, err := s.RecordLoginFailure(ctx, u.ID, lockAfter, lockFor)
	if err != nil {
		t.Fatal(err)
	}
	if until.Before(before.Add(lockFor-time.Minute)) || until.After(before.Add(lockFor+time.Minute)) {
		t.Fatalf("locked until %v, want about %v", until, before.Add(lockFor))
	}
	rec, _ = s.UserByUsername(ctx, u.Username)
	if rec.FailedLogins != 0 || !rec.LockedUntil.Equal(until) {
		t.Fatalf("after lock-out: %+v (counter reset, locked until %v)", rec, until)
	}

	wantErr(t, s.ResetLoginFailures(ctx, u.ID), nil)
	rec, _ = s.UserByUsername(ctx, u.Username)
	if rec.FailedLogins != 0 || !rec.LockedUntil.IsZero() {
		t.Fatalf("after reset: %+v", rec)
	}

	t.Run("lock-out disabled", func(t *testing.T) {
		for range 5 {
			if until, err := s.RecordLoginFailure(ctx, u.ID, 0, lockFor); err != nil || !until.IsZero() {
				t.Fatalf("lockAfter 0 locked until %v, %v", until, err)
			}
		}
		wantErr(t, s.ResetLoginFailures(ctx, u.ID), nil)
	})

	t.Run("an expired lock is no lock", func(t *testing.T) {
		if _, err := s.RecordLoginFailure(ctx, u.ID, 1, -time.Second); err != nil {
			t.Fatal(err)
		}
		if rec, _ := s.UserByUsername(ctx, u.Username); !rec.LockedUntil.IsZero() {
			t.Fatalf("expired lock reported: %v", rec.LockedUntil)
		}
	})

	for _, id := range []string{unknownID, "bogus"} {
		_, err := s.RecordLoginFailure(ctx, id, lockAfter, lockFor)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.ResetLoginFailures(ctx, id), store.ErrNotFound)
	}
}

func TestRefreshTokens(t *testing.T) {
	s, pool := newStore(t)
	ctx := ctxT(t)
	u, err := s.CreateUser(ctx, "alice", "h", api.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	tok := func(id, family string) store.RefreshToken {
		return store.RefreshToken{ID: id, UserID: u.ID, FamilyID: family, ExpiresAt: exp}
	}

	t.Run("create", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			tok  store.RefreshToken
			want error
		}{
			{"first of a family", tok("a1", "fa"), nil},
			{"another family", tok("b1", "fb"), nil},
			{"duplicate id", tok("a1", "fa"), store.ErrConflict},
			{"unknown user", store.RefreshToken{ID: "x", UserID: unknownID, FamilyID: "f", ExpiresAt: exp}, store.ErrNotFound},
			{"malformed user", store.RefreshToken{ID: "x", UserID: "u", FamilyID: "f", ExpiresAt: exp}, store.ErrNotFound},
			{"empty id", tok("", "f"), store.ErrInvalid},
			{"empty family", tok("y", ""), store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) { wantErr(t, s.CreateRefreshToken(ctx, tc.tok), tc.want) })
		}
	})

	t.Run("rotation and reuse", func(t *testing.T) {
		wantErr(t, s.RotateRefreshToken(ctx, "a1", store.RefreshToken{ID: "a2", ExpiresAt: exp}), nil)
		wantErr(t, s.RotateRefreshToken(ctx, "a2", tok("a3", "fa")), nil)
		// The replayed first token revokes the family: the current token a3 is dead too.
		wantErr(t, s.RotateRefreshToken(ctx, "a1", tok("a4", "fa")), store.ErrTokenReused)
		wantErr(t, s.RotateRefreshToken(ctx, "a3", tok("a5", "fa")), store.ErrTokenReused)
		if n := queryInt(t, pool, `SELECT count(*) FROM refresh_tokens WHERE family_id = 'fa' AND revoked_at IS NULL`); n != 0 {
			t.Fatalf("%d tokens of the reused family still live", n)
		}
		if n := queryInt(t, pool, `SELECT count(*) FROM refresh_tokens WHERE id IN ('a4', 'a5')`); n != 0 {
			t.Fatal("a token was issued on reuse")
		}
		// Other logins are untouched.
		wantErr(t, s.RotateRefreshToken(ctx, "b1", tok("b2", "fb")), nil)
	})

	t.Run("rotation errors", func(t *testing.T) {
		wantErr(t, s.CreateRefreshToken(ctx, tok("c1", "fc")), nil)
		for _, tc := range []struct {
			name, old string
			next      store.RefreshToken
			want      error
		}{
			{"unknown", "nope", tok("c9", "fc"), store.ErrNotFound},
			{"next id taken", "c1", tok("b2", "fc"), store.ErrConflict},
			{"other family", "c1", tok("c2", "fb"), store.ErrInvalid},
			{"other user", "c1", store.RefreshToken{ID: "c2", UserID: unknownID, ExpiresAt: exp}, store.ErrInvalid},
			{"empty next id", "c1", tok("", "fc"), store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) { wantErr(t, s.RotateRefreshToken(ctx, tc.old, tc.next), tc.want) })
		}
		// None of the failures consumed c1.
		wantErr(t, s.RotateRefreshToken(ctx, "c1", tok("c2", "fc")), nil)

		wantErr(t, s.CreateRefreshToken(ctx, store.RefreshToken{ID: "old", UserID: u.ID, FamilyID: "fo", ExpiresAt: time.Now().Add(-time.Minute)}), nil)
		wantErr(t, s.RotateRefreshToken(ctx, "old", tok("old2", "fo")), store.ErrNotFound)
	})

	t.Run("logout", func(t *testing.T) {
		wantErr(t, s.CreateRefreshToken(ctx, tok("d1", "fd")), nil)
		wantErr(t, s.RotateRefreshToken(ctx, "d1", tok("d2", "fd")), nil)
		wantErr(t, s.RevokeRefreshToken(ctx, "d2"), nil)
		wantErr(t, s.RevokeRefreshToken(ctx, "d2"), nil) // idempotent
		wantErr(t, s.RotateRefreshToken(ctx, "d2", tok("d3", "fd")), store.ErrTokenReused)
		wantErr(t, s.RevokeRefreshToken(ctx, "nope"), store.ErrNotFound)
	})

	t.Run("deleted user", func(t *testing.T) {
		v, err := s.CreateUser(ctx, "victor", "h", api.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.CreateRefreshToken(ctx, store.RefreshToken{ID: "v1", UserID: v.ID, FamilyID: "fv", ExpiresAt: exp}), nil)
		wantErr(t, s.DeleteUser(ctx, v.ID), nil)
		wantErr(t, s.RotateRefreshToken(ctx, "v1", store.RefreshToken{ID: "v2", ExpiresAt: exp}), store.ErrNotFound)
	})
}
