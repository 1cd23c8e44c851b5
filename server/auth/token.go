package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the iss claim of every token this server signs.
const Issuer = "pganalytics-api"

// Kind is what a token is for. Each kind has its own audience, so one never passes for another.
type Kind int

// Token kinds.
const (
	KindAccess Kind = iota + 1
	KindRefresh
	KindCollector
)

// Audiences of the three kinds.
const (
	AudienceAccess    = "pganalytics:user-access"
	AudienceRefresh   = "pganalytics:user-refresh"
	AudienceCollector = "pganalytics:collector"
)

func (k Kind) audience() string {
	switch k {
	case KindAccess:
		return AudienceAccess
	case KindRefresh:
		return AudienceRefresh
	case KindCollector:
		return AudienceCollector
	}
	return ""
}

func (k Kind) String() string {
	switch k {
	case KindAccess:
		return "access"
	case KindRefresh:
		return "refresh"
	case KindCollector:
		return "collector"
	}
	return "unknown"
}

// Verification failures. ErrTokenExpired is only returned for a token whose signature verified.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenExpired = errors.New("token expired")
)

// Claims are the registered claims plus the few this server adds. Subject is the user or collector
// id; ID (jti) identifies refresh and collector tokens in the store.
type Claims struct {
	jwt.RegisteredClaims
	Name   string `json:"name,omitempty"` // username of access tokens (audit actor)
	Role   string `json:"role,omitempty"` // role of access tokens
	Family string `json:"fam,omitempty"`  // refresh token family: one login's rotation chain
}

// TTLs are the lifetimes of the three kinds.
type TTLs struct {
	Access, Refresh, Collector time.Duration
}

// Tokens signs and verifies the server's JWTs with one HS256 key.
type Tokens struct {
	key     []byte
	ttl     TTLs
	now     func() time.Time
	parsers map[Kind]*jwt.Parser
}

// NewTokens returns a signer/verifier; now is time.Now outside tests.
func NewTokens(secret []byte, ttl TTLs, now func() time.Time) *Tokens {
	t := &Tokens{key: secret, ttl: ttl, now: now, parsers: map[Kind]*jwt.Parser{}}
	for _, k := range []Kind{KindAccess, KindRefresh, KindCollector} {
		t.parsers[k] = jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithAudience(k.audience()),
			jwt.WithIssuer(Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		)
	}
	return t
}

// TTL returns the lifetime of a kind.
func (t *Tokens) TTL(k Kind) time.Duration {
	switch k {
	case KindAccess:
		return t.ttl.Access
	case KindRefresh:
		return t.ttl.Refresh
	}
	return t.ttl.Collector
}

// Issued is a signed token with its id and expiry.
type Issued struct {
	Token     string
	ID        string
	ExpiresAt time.Time
}

func (t *Tokens) sign(k Kind, c Claims) (Issued, error) {
	now := t.now()
	if c.ID == "" {
		id, err := NewID()
		if err != nil {
			return Issued{}, err
		}
		c.ID = id
	}
	exp := now.Add(t.TTL(k))
	c.Issuer = Issuer
	c.Audience = jwt.ClaimStrings{k.audience()}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return Issued{}, fmt.Errorf("sign %s token: %w", k, err)
	}
	return Issued{Token: s, ID: c.ID, ExpiresAt: exp}, nil
}

// IssueAccess signs a user access token.
func (t *Tokens) IssueAccess(userID, username, role string) (Issued, error) {
	return t.sign(KindAccess, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: userID}, Name: username, Role: role})
}

// IssueRefresh signs a user refresh token in the given rotation family.
func (t *Tokens) IssueRefresh(userID, family string) (Issued, error) {
	return t.sign(KindRefresh, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: userID}, Family: family})
}

// IssueCollector signs a collector token with a caller-chosen id (the store keeps it for revocation).
func (t *Tokens) IssueCollector(collectorID, tokenID string) (Issued, error) {
	return t.sign(KindCollector, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: collectorID, ID: tokenID}})
}

// Verify checks a token of the expected kind: HS256 only, our issuer, that kind's audience, an
// expiry in the future, and the claims the kind needs.
func (t *Tokens) Verify(k Kind, token string) (*Claims, error) {
	p, ok := t.parsers[k]
	if !ok {
		return nil, ErrTokenInvalid
	}
	var c Claims
	_, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, ErrTokenExpired
	default:
		return nil, ErrTokenInvalid
	}
	if c.Subject == "" || c.ID == "" {
		return nil, ErrTokenInvalid
	}
	switch k {
	case KindAccess:
		if c.Role == "" {
			return nil, ErrTokenInvalid
		}
	case KindRefresh:
		if c.Family == "" {
			return nil, ErrTokenInvalid
		}
	}
	return &c, nil
}

// Identify verifies a bearer token that may be a user access token or a collector token, choosing
// the verifier by the (unverified) audience and then verifying strictly with it. Refresh tokens are
// never bearer credentials.
func (t *Tokens) Identify(token string) (Kind, *Claims, error) {
	var peek jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &peek); err != nil {
		return 0, nil, ErrTokenInvalid
	}
	var k Kind
	for _, aud := range peek.Audience {
		switch aud {
		case AudienceAccess:
			k = KindAccess
		case AudienceCollector:
			k = KindCollector
		}
	}
	if k == 0 {
		return 0, nil, ErrTokenInvalid
	}
	c, err := t.Verify(k, token)
	if err != nil {
		return 0, nil, err
	}
	return k, c, nil
}

// NewID returns a random UUID (version 4) for token ids and families.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
