package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTokens(c *clock) *Tokens {
	return NewTokens(testKey, TTLs{Access: 15 * time.Minute, Refresh: 7 * 24 * time.Hour, Collector: 365 * 24 * time.Hour}, c.now)
}

func TestTokenRoundTrips(t *testing.T) {
	c := &clock{t: time.Now()}
	tk := newTokens(c)
	acc, err := tk.IssueAccess("u1", "alice", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if got := acc.ExpiresAt.Sub(c.t); got != 15*time.Minute {
		t.Fatalf("access ttl %s", got)
	}
	kind, claims, err := tk.Identify(acc.Token)
	if err != nil || kind != KindAccess || claims.Subject != "u1" || claims.Role != "admin" || claims.Name != "alice" {
		t.Fatalf("identify access: %v %v %+v", kind, err, claims)
	}
	ref, err := tk.IssueRefresh("u1", "fam1")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := tk.Verify(KindRefresh, ref.Token)
	if err != nil || rc.Family != "fam1" || rc.ID != ref.ID {
		t.Fatalf("verify refresh: %v %+v", err, rc)
	}
	col, err := tk.IssueCollector("c1", "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	kind, claims, err = tk.Identify(col.Token)
	if err != nil || kind != KindCollector || claims.Subject != "c1" || claims.ID != "jti-1" {
		t.Fatalf("identify collector: %v %v %+v", kind, err, claims)
	}
}

// forge signs arbitrary claims with an arbitrary method and key.
func forge(t *testing.T, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRefusals(t *testing.T) {
	c := &clock{t: time.Now()}
	tk := newTokens(c)
	valid := func(aud string) Claims {
		return Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: Issuer, Subject: "u1", ID: "j1", Audience: jwt.ClaimStrings{aud},
				IssuedAt: jwt.NewNumericDate(c.t), ExpiresAt: jwt.NewNumericDate(c.t.Add(time.Minute)),
			},
			Role: "admin", Family: "f",
		}
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	noExp := valid(AudienceAccess)
	noExp.ExpiresAt = nil
	expired := valid(AudienceAccess)
	expired.ExpiresAt = jwt.NewNumericDate(c.t.Add(-time.Hour))
	expired.IssuedAt = jwt.NewNumericDate(c.t.Add(-2 * time.Hour))
	wrongIss := valid(AudienceAccess)
	wrongIss.Issuer = "someone-else"
	noRole := valid(AudienceAccess)
	noRole.Role = ""
	future := valid(AudienceAccess)
	future.IssuedAt = jwt.NewNumericDate(c.t.Add(time.Hour))

	refresh, err := tk.IssueRefresh("u1", "f")
	if err != nil {
		t.Fatal(err)
	}
	access, err := tk.IssueAccess("u1", "alice", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	collector, err := tk.IssueCollector("c1", "j")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(access.Token, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]

	cases := []struct {
		name  string
		kind  Kind
		token string
		want  error
	}{
		{"alg none", KindAccess, forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(AudienceAccess)), ErrTokenInvalid},
		{"foreign alg ES256", KindAccess, forge(t, jwt.SigningMethodES256, ec, valid(AudienceAccess)), ErrTokenInvalid},
		{"HS512 with our key", KindAccess, forge(t, jwt.SigningMethodHS512, testKey, valid(AudienceAccess)), ErrTokenInvalid},
		{"wrong key", KindAccess, forge(t, jwt.SigningMethodHS256, []byte("another-key-another-key-another-k"), valid(AudienceAccess)), ErrTokenInvalid},
		{"expired", KindAccess, forge(t, jwt.SigningMethodHS256, testKey, expired), ErrTokenExpired},
		{"no expiry", KindAccess, forge(t, jwt.SigningMethodHS256, testKey, noExp), ErrTokenInvalid},
		{"wrong issuer", KindAccess, forge(t, jwt.SigningMethodHS256, testKey, wrongIss), ErrTokenInvalid},
		{"access without role", KindAccess, forge(t, jwt.SigningMethodHS256, testKey, noRole), ErrTokenInvalid},
		{"issued in the future", KindAccess, forge(t, jwt.SigningMethodHS256, testKey, future), ErrTokenInvalid},
		{"refresh used as access", KindAccess, refresh.Token, ErrTokenInvalid},
		{"collector used as access", KindAccess, collector.Token, ErrTokenInvalid},
		{"access used as refresh", KindRefresh, access.Token, ErrTokenInvalid},
		{"access used as collector", KindCollector, access.Token, ErrTokenInvalid},
		{"tampered payload", KindAccess, tampered, ErrTokenInvalid},
		{"garbage", KindAccess, "not.a.jwt", ErrTokenInvalid},
		{"empty", KindAccess, "", ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tk.Verify(tc.kind, tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("identify refuses refresh tokens as bearer", func(t *testing.T) {
		if _, _, err := tk.Identify(refresh.Token); !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("expired after ttl", func(t *testing.T) {
		later := &clock{t: c.t.Add(16 * time.Minute)}
		if _, err := newTokens(later).Verify(KindAccess, access.Token); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestNewIDIsUUIDv4(t *testing.T) {
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 36 || id[14] != '4' || strings.Count(id, "-") != 4 {
		t.Fatalf("id %q", id)
	}
}

func TestPasswordHashing(t *testing.T) {
	ctx := context.Background()
	h, err := NewHasher(Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", enc)
	}
	again, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil || again == enc {
		t.Fatal("salt must differ between hashes")
	}
	cases := []struct {
		name    string
		encoded string
		pw      string
		ok      bool
		err     error
	}{
		{"right password", enc, "correct horse battery staple", true, nil},
		{"wrong password", enc, "correct horse battery stapler", false, nil},
		{"empty password", enc, "", false, nil},
		{"oversized password", enc, strings.Repeat("a", MaxPasswordBytes+1), false, nil},
		{"bcrypt-looking hash", "$2a$10$abcdefghijklmnopqrstuv", "x", false, ErrMalformedHash},
		{"absurd memory", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x", false, ErrMalformedHash},
		{"wrong version", strings.Replace(enc, "v=19", "v=16", 1), "correct horse battery staple", false, ErrMalformedHash},
		{"empty hash", "", "x", false, ErrMalformedHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tc.encoded, tc.pw)
			if ok != tc.ok || !errors.Is(err, tc.err) {
				t.Fatalf("Verify = %v, %v; want %v, %v", ok, err, tc.ok, tc.err)
			}
		})
	}
}

func TestPasswordPolicy(t *testing.T) {
	for pw, ok := range map[string]bool{"short": false, "longenough": true, strings.Repeat("x", MaxPasswordBytes+1): false} {
		if err := CheckPasswordPolicy(pw); (err == nil) != ok {
			t.Errorf("CheckPasswordPolicy(len %d) = %v", len(pw), err)
		}
	}
}

func TestHasherHonoursCancelledContext(t *testing.T) {
	h, err := NewHasher(Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // occupy the only slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "whatever-password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
