package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
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
		if err != nil || !reflect.DeepEqual(rec.User, alice) || rec.PasswordHash != "$argon2id$hash" {
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
				if tc.want == nil && !reflect.DeepEqual(u, alice) {
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

// TestLoginThrottle counts failures per (account, address), address and account, locks each
// scope at its limit, starts a counter again after the window, clears what a success and an
// unlock clear, and remembers the addresses an account logged in from.
func TestLoginThrottle(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	u, err := s.CreateUser(ctx, "target", "h", api.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	p := store.ThrottlePolicy{PerAccountAddress: 3, PerAddress: 5, PerAccount: 8, Window: 15 * time.Minute}
	now := time.Now()
	fail := func(user, ip string) []string {
		t.Helper()
		locked, err := s.RecordLoginFailure(ctx, user, ip, p, now)
		if err != nil {
			t.Fatal(err)
		}
		return locked
	}
	locks := func(user, ip string) store.LoginLocks {
		t.Helper()
		l, err := s.LoginLocks(ctx, user, ip, now)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	fail("target", "192.0.2.1")
	fail("target", "192.0.2.1")
	if got := fail("target", "192.0.2.1"); !slices.Equal(got, []string{store.ScopeAccountAddress}) {
		t.Fatalf("third failure locked %v", got)
	}
	if l := locks("target", "192.0.2.1"); l.AccountAddress.IsZero() || !l.Address.IsZero() || !l.Account.IsZero() {
		t.Fatalf("locks %+v", l)
	}
	if l := locks("target", "192.0.2.2"); !l.AccountAddress.IsZero() || !l.Address.IsZero() || !l.Account.IsZero() {
		t.Fatalf("another address is locked too: %+v", l)
	}
	fail("someone-else", "192.0.2.1")
	if got := fail("third", "192.0.2.1"); !slices.Equal(got, []string{store.ScopeAddress}) {
		t.Fatalf("fifth failure from the address locked %v", got)
	}
	if l := locks("anyone", "192.0.2.1"); l.Address.IsZero() {
		t.Fatalf("address not locked: %+v", l)
	}

	// The account from many addresses: the last resort, which a known address still passes.
	if err := s.RecordLoginSuccess(ctx, u.ID, "target", "198.51.100.7", now); err != nil {
		t.Fatal(err)
	}
	for i := range 7 { // the success cleared the account's count
		fail("target", fmt.Sprintf("203.0.113.%d", i))
	}
	if got := fail("target", "203.0.113.99"); !slices.Equal(got, []string{store.ScopeAccount}) {
		t.Fatalf("eighth failure of the account locked %v", got)
	}
	if l := locks("target", "198.51.100.7"); l.Account.IsZero() || !l.KnownAddress {
		t.Fatalf("known address: %+v", l)
	}
	if l := locks("target", "203.0.113.50"); l.Account.IsZero() || l.KnownAddress {
		t.Fatalf("unknown address: %+v", l)
	}

	t.Run("the window starts again", func(t *testing.T) {
		later := now.Add(p.Window + time.Second)
		locked, err := s.RecordLoginFailure(ctx, "fresh", "192.0.2.200", p, later)
		if err != nil || len(locked) != 0 {
			t.Fatal(locked, err)
		}
		for range 2 {
			if _, err := s.RecordLoginFailure(ctx, "fresh", "192.0.2.200", p, later.Add(p.Window+time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if l, _ := s.LoginLocks(ctx, "fresh", "192.0.2.200", later.Add(p.Window+time.Second)); !l.AccountAddress.IsZero() {
			t.Fatalf("counted across windows: %+v", l)
		}
	})

	t.Run("unlock", func(t *testing.T) {
		n, err := s.UnlockUser(ctx, "target", now)
		if err != nil || n != 2 {
			t.Fatalf("unlocked %d, %v; want the account and its (account, address) lock", n, err)
		}
		if l := locks("target", "192.0.2.2"); !l.Account.IsZero() || !l.AccountAddress.IsZero() {
			t.Fatalf("after unlock: %+v", l)
		}
		if l := locks("anyone", "192.0.2.1"); l.Address.IsZero() {
			t.Fatal("unlocking an account lifted an address lock")
		}
		_, err = s.UnlockUser(ctx, "nobody", now)
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("success clears the account", func(t *testing.T) {
		fail("target", "192.0.2.9")
		if err := s.RecordLoginSuccess(ctx, u.ID, "target", "192.0.2.9", now); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.RecordLoginSuccess(ctx, unknownID, "ghost", "192.0.2.9", now), store.ErrNotFound)
	})

	t.Run("trimmed by maintenance", func(t *testing.T) {
		if err := s.Maintain(ctx, now.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if l := locks("anyone", "192.0.2.1"); !l.Address.IsZero() {
			t.Fatal("not trimmed")
		}
	})
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

// TestIsClientError tells what PostgreSQL refused for the data it was given from a failing database.
func TestIsClientError(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	err := s.Audit(ctx, api.AuditEntry{Actor: "anonymous", Action: "probe", Target: "nul\x00here"})
	if err == nil || !store.IsClientError(err) {
		t.Fatalf("NUL in text: %v (client error %v)", err, store.IsClientError(err))
	}
	if store.IsClientError(context.DeadlineExceeded) || store.IsClientError(store.ErrNotFound) {
		t.Fatal("a non-database error counted as the client's")
	}
}
