// Package auth holds the server's credentials logic: argon2id password hashes and the HS256 JWTs of
// users (access, refresh) and collectors, each kind under its own audience.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters written into every hash (PHC string format).
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultArgon2 is OWASP's recommended minimum for argon2id (19 MiB, 2 passes, 1 lane).
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

const (
	saltBytes = 16
	keyBytes  = 32
	// MaxPasswordBytes bounds what is hashed; longer input is refused before any work.
	MaxPasswordBytes = 1024
	// MinPasswordBytes follows NIST SP 800-63B's minimum.
	MinPasswordBytes = 8
)

// ErrMalformedHash is returned for a stored hash that is not an argon2id PHC string we can verify.
var ErrMalformedHash = errors.New("malformed password hash")

// Hasher hashes and verifies passwords. It bounds how many hashes run at once (each holds
// MemoryKiB), so a burst of logins cannot exhaust memory, and keeps a dummy hash so that a login for
// an unknown user costs the same as one for a known user.
type Hasher struct {
	params Argon2Params
	slots  chan struct{}
	dummy  string
}

// NewHasher returns a Hasher running at most concurrency hashes at a time.
func NewHasher(p Argon2Params, concurrency int) (*Hasher, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	h := &Hasher{params: p, slots: make(chan struct{}, concurrency)}
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	dummy, err := h.Hash(context.Background(), base64.RawStdEncoding.EncodeToString(pw))
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// CheckPasswordPolicy returns a user-facing reason when pw is unacceptable as a new password.
func CheckPasswordPolicy(pw string) error {
	switch {
	case len(pw) < MinPasswordBytes:
		return fmt.Errorf("password must be at least %d bytes", MinPasswordBytes)
	case len(pw) > MaxPasswordBytes:
		return fmt.Errorf("password must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the argon2id PHC string of pw with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxPasswordBytes {
		return "", fmt.Errorf("password longer than %d bytes", MaxPasswordBytes)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string encoded, comparing in constant time.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	if len(pw) > MaxPasswordBytes {
		// Burn the same time as a real check so length does not reveal anything.
		_, _ = h.verify(ctx, h.dummy, "")
		return false, nil
	}
	return h.verify(ctx, encoded, pw)
}

// VerifyDummy spends the time of one verification, for logins naming an unknown user.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) {
	if len(pw) > MaxPasswordBytes {
		pw = ""
	}
	_, _ = h.verify(ctx, h.dummy, pw)
}

func (h *Hasher) verify(ctx context.Context, encoded, pw string) (bool, error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parsePHC reads "$argon2id$v=19$m=…,t=…,p=…$salt$hash", refusing parameters outside sane bounds so a
// tampered row cannot make one login allocate gigabytes.
func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Argon2Params{}, nil, nil, ErrMalformedHash
	}
	var p Argon2Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Argon2Params{}, nil, nil, ErrMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Argon2Params{}, nil, nil, ErrMalformedHash
		}
		switch k {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Argon2Params{}, nil, nil, ErrMalformedHash
			}
			p.Threads = uint8(n)
		default:
			return Argon2Params{}, nil, nil, ErrMalformedHash
		}
	}
	if p.MemoryKiB < 8 || p.MemoryKiB > 1<<20 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return Argon2Params{}, nil, nil, ErrMalformedHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return Argon2Params{}, nil, nil, ErrMalformedHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Argon2Params{}, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}
