package smoke

import "testing"

func TestLeakPatterns(t *testing.T) {
	tests := []struct {
		body string
		want string // leak name, "" for clean
	}{
		{`{"error":{"code":"not_found","message":"no such route"}}`, ""},
		{`{"error":{"code":"invalid_credentials","message":"invalid username or password"}}`, ""},
		{`{"error":{"code":"bad_request","message":"password: too short"}}`, ""},
		{`{"error":{"code":"unauthorized","message":"invalid token: expired"}}`, ""},
		{`{"error":{"code":"bad_request","message":"since must be an RFC 3339 timestamp"}}`, ""},
		{`{"error":{"message":"route /api/v1/metrics failed"}}`, ""},
		{"panic: runtime error: index out of range\n\ngoroutine 1 [running]:", "a Go stack trace"},
		{`handler.go:42 nil map`, "a Go stack trace"},
		{`Traceback (most recent call last):`, "a stack trace"},
		{`ERROR: relation "metrics" does not exist (SQLSTATE 42P01)`, "a database error"},
		{`INSERT INTO users (name) VALUES ($1)`, "SQL text"},
		{`failed to connect to host=db user=pga: pgconn`, "a database error"},
		{`open /etc/pganalytics/config.toml: permission denied`, "a file path"},
		{`C:\pganalytics\config.toml`, "a file path"},
		{`config: jwt_secret_key=abcdefghijkl`, "a secret assignment"},
		{`{"password":"hunter2!"}`, "a secret assignment"},
		{`bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.sig`, "a JWT"},
		{`dial postgres://pganalytics:s3cret@db:5432/pganalytics`, "a database URL with a password"},
		{"-----BEGIN EC PRIVATE KEY-----", "a private key"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, _ := firstLeak([]byte(tt.body), stackLeaks, sqlLeaks, pathLeaks, secretLeaks)
			if got != tt.want {
				t.Errorf("firstLeak = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPasswordHashPatterns(t *testing.T) {
	tests := []struct {
		hash string
		ok   bool
	}{
		{"$argon2id$v=19$m=65536,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", true},
		{"$argon2id$v=19$m=19456,t=2,p=1$YWJj$ZGVm==", true},
		{"$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", true},
		{"$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", true},
		{"hunter2", false},
		{"$argon2i$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", false},
		{"$2a$12$short", false},
		{"5f4dcc3b5aa765d61d8327deb882cf99", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := argon2idPHC.MatchString(tt.hash) || bcryptHash.MatchString(tt.hash); got != tt.ok {
			t.Errorf("%q: recognised %v, want %v", tt.hash, got, tt.ok)
		}
	}
}
