package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileAndEnvPrecedence(t *testing.T) {
	path := writeFile(t, `
environment = "staging"
listen_addr = "127.0.0.1:9000"
rate_limit_per_minute = 50
trusted_proxies = ["10.0.0.0/8", "192.168.1.7"]
cors_allowed_origins = ["https://grafana.example.com"]

[database]
url = "postgres://file/db"
connect_timeout = "5s"

[auth]
access_token_ttl = "10m"
`)
	cfg, err := Load(path, env(map[string]string{
		"DATABASE_URL":          "postgres://env/db",
		"RATE_LIMIT_PER_MINUTE": "200",
		"CORS_ALLOWED_ORIGINS":  "https://a.example, https://b.example:8443",
		"TLS_ENABLED":           "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"environment from file", cfg.Environment, Staging},
		{"listen from file", cfg.ListenAddr, "127.0.0.1:9000"},
		{"database url from env", cfg.Database.URL, "postgres://env/db"},
		{"rate limit from env", cfg.RateLimitPerMinute, 200},
		{"cors from env", strings.Join(cfg.CORSAllowedOrigins, " "), "https://a.example https://b.example:8443"},
		{"connect timeout from file", cfg.Database.ConnectTimeout.D(), 5 * time.Second},
		{"access ttl from file", cfg.Auth.AccessTokenTTL.D(), 10 * time.Minute},
		{"refresh ttl default", cfg.Auth.RefreshTokenTTL.D(), 7 * 24 * time.Hour},
		{"proxy count", len(cfg.TrustedProxyNets), 2},
		{"bare proxy address is a /32", cfg.TrustedProxyNets[1].String(), "192.168.1.7/32"},
		{"auto migrate default", cfg.Database.AutoMigrate, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Environment != Production || cfg.ListenAddr != ":8080" || cfg.RateLimitPerMinute != 100 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if l := cfg.Limits; l.PushMaxBytes != 8<<20 || l.PushMaxDecompressedBytes != 32<<20 || l.BodyMaxBytes != 64<<10 ||
		l.PushMemoryBytes != 64<<20 || l.PushPerCollector != 2 || l.StreamsPerPrincipal != 8 || l.StreamsMax != 1000 {
		t.Fatalf("limit defaults: %+v", cfg.Limits)
	}
	if a := cfg.Auth; a.LoginMaxFailures != 5 || a.LoginMaxFailuresPerAddress != 20 || a.LoginMaxFailuresPerAccount != 100 {
		t.Fatalf("auth defaults: %+v", a)
	}
}

func TestLoadRefusals(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		want string // substring of the one-line error
	}{
		{"unknown top-level key with line", "environment = \"staging\"\nlisten_adr = \":1\"\n", nil, `:2:1: unknown key "listen_adr"`},
		{"unknown nested key with line", "[database]\nurl = \"x\"\npool = 3\n", nil, `:3:1: unknown key "database.pool"`},
		{"toml syntax error with line", "environment = \n", nil, ":1:"},
		{"wrong type", "rate_limit_per_minute = \"many\"\n", nil, "rate_limit_per_minute"},
		{"bad duration", "[auth]\naccess_token_ttl = \"soon\"\n", nil, `invalid duration "soon"`},
		// A bare integer is no duration (it used to be read as nanoseconds: "gave up after 30ns").
		{"bare integer duration", "[database]\nurl = \"x\"\nconnect_timeout = 30\n", nil, ":3:"},
		{"bad environment", "", map[string]string{"ENVIRONMENT": "prod"}, `environment "prod"`},
		{"bad TLS_ENABLED", "", map[string]string{"TLS_ENABLED": "yes please"}, "TLS_ENABLED"},
		{"bad rate limit", "", map[string]string{"RATE_LIMIT_PER_MINUTE": "ten"}, "RATE_LIMIT_PER_MINUTE"},
		{"zero rate limit", "", map[string]string{"RATE_LIMIT_PER_MINUTE": "0"}, "rate_limit_per_minute 0"},
		{"bad proxy", "", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, `trusted_proxies "10.0.0.0/33"`},
		{"wildcard origin", "", map[string]string{"CORS_ALLOWED_ORIGINS": "*"}, `cors_allowed_origins "*"`},
		{"origin with path", "", map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example/x"}, "no path"},
		{"bad listen", "", map[string]string{"LISTEN_ADDR": "8080"}, `listen_addr "8080"`},
		{"decompressed below wire cap", "[limits]\npush_max_bytes = 4096\npush_max_decompressed_bytes = 2048\n", nil, "push_max_decompressed_bytes"},
		{"short retention", "[database]\nretention = \"1h\"\n", nil, "database.retention"},
		{"remote write without a URL", "[[remote_write]]\nqueue_samples = 10\n", nil, "remote_write[0].url"},
		{"remote write URL not http", "", map[string]string{"REMOTE_WRITE_URLS": "ftp://m.example/push"}, "remote_write[0].url"},
		{"remote write reserved header", "[[remote_write]]\nurl = \"https://m.example/api/v1/push\"\nheaders = { Content-Encoding = \"gzip\" }\n", nil, "set by the sender"},
		{"remote write two auths", "[[remote_write]]\nurl = \"https://m.example/api/v1/push\"\nbearer_token = \"t\"\nbasic_auth_username = \"u\"\n", nil, "exclude each other"},
		{"remote write password alone", "[[remote_write]]\nurl = \"https://m.example/api/v1/push\"\nbasic_auth_password = \"p\"\n", nil, "needs basic_auth_username"},
		{"remote write huge queue", "[[remote_write]]\nurl = \"https://m.example/api/v1/push\"\nqueue_samples = 100000000\n", nil, "queue_samples"},
		{"remote write bare timeout", "[[remote_write]]\nurl = \"https://m.example/api/v1/push\"\ntimeout = 30\n", nil, ":3:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := Load(path, env(tc.env))
			if err == nil {
				t.Fatalf("want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateServe(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":        "postgres://x/y",
		"JWT_SECRET_KEY":      goodSecret,
		"REGISTRATION_SECRET": goodSecret,
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		env  map[string]string
		want string // "" = accepted
	}{
		{"production over TLS", with("TLS_ENABLED", "true", "TLS_CERT_FILE", "c", "TLS_KEY_FILE", "k"), ""},
		{"production behind trusted proxy", with("TRUSTED_PROXIES", "10.0.0.1"), ""},
		{"production plain HTTP refused", with(), "production refuses plain HTTP"},
		{"production plain HTTP refused even on loopback", with("LISTEN_ADDR", "127.0.0.1:8080"), "production refuses plain HTTP"},
		{"staging plain HTTP on loopback", with("ENVIRONMENT", "staging", "LISTEN_ADDR", "127.0.0.1:8080"), ""},
		{"staging plain HTTP on all interfaces refused", with("ENVIRONMENT", "staging"), "loopback only"},
		{"development plain HTTP on ::1", with("ENVIRONMENT", "development", "LISTEN_ADDR", "[::1]:8080"), ""},
		{"development plain HTTP on localhost", with("ENVIRONMENT", "development", "LISTEN_ADDR", "localhost:8080"), ""},
		{"development public address refused", with("ENVIRONMENT", "development", "LISTEN_ADDR", "0.0.0.0:8080"), "loopback only"},
		{"TLS without key file", with("TLS_ENABLED", "true", "TLS_CERT_FILE", "c"), "TLS_KEY_FILE"},
		{"missing database", with("DATABASE_URL", ""), "DATABASE_URL is not set"},
		{"missing jwt secret", with("JWT_SECRET_KEY", "", "TRUSTED_PROXIES", "10.0.0.1"), "JWT_SECRET_KEY is not set"},
		{"short jwt secret in production", with("JWT_SECRET_KEY", "short", "TRUSTED_PROXIES", "10.0.0.1"), "JWT_SECRET_KEY is 5 bytes; production requires at least 32"},
		{"short registration secret in staging", with("ENVIRONMENT", "staging", "LISTEN_ADDR", "127.0.0.1:1", "REGISTRATION_SECRET", "abc"), "REGISTRATION_SECRET is 3 bytes; staging"},
		{"short secrets allowed in development", with("ENVIRONMENT", "development", "LISTEN_ADDR", "127.0.0.1:1", "JWT_SECRET_KEY", "dev", "REGISTRATION_SECRET", "dev"), ""},
		{"missing secret refused in development", with("ENVIRONMENT", "development", "LISTEN_ADDR", "127.0.0.1:1", "REGISTRATION_SECRET", ""), "REGISTRATION_SECRET is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.ValidateServe()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), goodSecret) {
				t.Fatal("error leaks a secret")
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "127.5.6.7:1": true,
		":8080": false, "0.0.0.0:1": false, "[::]:1": false, "10.0.0.1:1": false, "example.com:1": false,
	}
	for addr, want := range cases {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestExampleConfig keeps deploy/config.toml loadable and servable with secrets from the environment.
func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../../deploy/config.toml", env(map[string]string{
		"DATABASE_URL": "postgres://x/y", "JWT_SECRET_KEY": goodSecret, "REGISTRATION_SECRET": goodSecret,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateServe(); err != nil {
		t.Fatal(err)
	}
	if cfg.Environment != Production || len(cfg.TrustedProxyNets) != 1 || cfg.Auth.LoginMaxFailures != 5 {
		t.Fatalf("%+v", cfg)
	}
}

// TestValidateServeChecksCodeBuiltConfig covers a Config assembled in code rather than by Load.
func TestValidateServeChecksCodeBuiltConfig(t *testing.T) {
	cfg := Default()
	cfg.Database.URL, cfg.JWTSecretKey, cfg.RegistrationSecret = "postgres://x/y", goodSecret, goodSecret
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	if err := cfg.ValidateServe(); err != nil || len(cfg.TrustedProxyNets) != 1 {
		t.Fatalf("err %v, nets %v", err, cfg.TrustedProxyNets)
	}
	cfg.RateLimitPerMinute = 0
	if err := cfg.ValidateServe(); err == nil || !strings.Contains(err.Error(), "rate_limit_per_minute") {
		t.Fatalf("got %v", err)
	}
}
