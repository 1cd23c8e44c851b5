package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func host() (string, error) { return "host-a", nil }

const minimal = `
[api]
url = "https://api.prod"
[[postgres]]
name = "db1"
dsn = "postgres://pganalytics@db1:5432/postgres"
`

func TestParseContractExample(t *testing.T) {
	// The example, verbatim keys.
	doc := `
[collector]
name = "prod-collector-01"          # hostname defaults to the machine's
[api]
url = "https://api.prod"
token_file = "/var/lib/pganalytics/collector.token"   # written by ` + "`pganalytics register`" + `
[[postgres]]                         # one table per monitored instance
name = "db1"
dsn = "postgres://pganalytics@db1:5432/postgres"     # or host/port/user + password_file
[pg_replication]
enabled = true
interval = "10s"
[buffer]
spool_dir = "/var/lib/pganalytics/spool"             # plus memory and disk size limits
`
	cfg, err := Parse("collector.toml", []byte(doc), host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collector.Name != "prod-collector-01" || cfg.Collector.Hostname != "host-a" || cfg.Collector.Interval.D() != 10*time.Second {
		t.Errorf("collector = %+v", cfg.Collector)
	}
	if !cfg.PgReplication.Enabled || cfg.PgReplication.Interval.D() != 10*time.Second {
		t.Errorf("pg_replication = %+v", cfg.PgReplication)
	}
	p := cfg.Postgres[0]
	if p.Address() != "db1:5432" || p.Timeout.D() != DefaultInstanceTimeout {
		t.Errorf("postgres = %+v address %s", p, p.Address())
	}
	if cfg.Buffer.DiskMaxBytes != DefaultDiskMaxBytes || cfg.Buffer.MemoryMaxBytes != DefaultMemoryMaxBytes {
		t.Errorf("buffer = %+v", cfg.Buffer)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal), host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collector.Name != "host-a" || cfg.API.TokenFile != DefaultTokenFile || cfg.Buffer.SpoolDir != DefaultSpoolDir ||
		!cfg.PgReplication.Enabled || cfg.API.Timeout.D() != DefaultAPITimeout || cfg.Collector.LogLevel != "info" {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestSeparateConnectionKeys(t *testing.T) {
	doc := `
[api]
url = "http://127.0.0.1:8080"
[[postgres]]
name = "tcp"
host = "10.0.0.5"
port = 5433
user = "pg analytics"
dbname = "app"
sslmode = "verify-full"
password_file = "/run/secrets/pw"
[[postgres]]
name = "socket"
host = "/var/run/postgresql"
user = "pganalytics"
`
	cfg, err := Parse("c.toml", []byte(doc), host)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := cfg.Postgres[0].ConnConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Host != "10.0.0.5" || tcp.Port != 5433 || tcp.User != "pg analytics" || tcp.Database != "app" || tcp.TLSConfig == nil {
		t.Errorf("tcp config = host %s port %d user %q db %s tls %v", tcp.Host, tcp.Port, tcp.User, tcp.Database, tcp.TLSConfig != nil)
	}
	if got := cfg.Postgres[1].Address(); got != "/var/run/postgresql:5432" {
		t.Errorf("socket address = %s", got)
	}
}

func manyInstances(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[postgres]]\nname = \"db%d\"\nhost = \"h\"\n", i)
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // every substring must appear
	}{
		{"unknown key names key and line", minimal + "\n[buffer]\nspool_dri = \"/x\"\n", []string{"c.toml:9:1", `unknown key "buffer.spool_dri"`}},
		{"unknown table", "[apii]\nurl = \"x\"\n" + minimal, []string{"c.toml:1:", `unknown key "apii"`}},
		{"syntax error has a line", minimal + "\n[collector\nname = 1\n", []string{"c.toml:8:"}},
		{"integer duration", minimal + "\n[collector]\ninterval = 10\n", []string{"invalid duration \"10\"", "quoted strings"}},
		{"wrong type", minimal + "\n[collector]\nname = 10\n", []string{"c.toml:9:", "name"}},
		{"bad duration", minimal + "\n[collector]\ninterval = \"ten seconds\"\n", []string{"c.toml:9:", "invalid duration"}},
		{"negative duration", minimal + "\n[pg_replication]\ninterval = \"-1s\"\n", []string{"negative duration"}},
		{"no api url", "[[postgres]]\nname = \"a\"\ndsn = \"postgres://x@h/db\"\n", []string{"api.url: required"}},
		{"bad api url", "[api]\nurl = \"ftp://x\"\n[[postgres]]\nname = \"a\"\nhost = \"h\"\n", []string{"api.url", "not an http(s) URL"}},
		{"no postgres", "[api]\nurl = \"http://x\"\n", []string{"at least one [[postgres]]"}},
		{"duplicate names", minimal + "[[postgres]]\nname = \"db1\"\nhost = \"h\"\n", []string{`"db1" is used twice`}},
		{"bad cluster name", strings.Replace(minimal, "[[postgres]]\n", "[[postgres]]\ncluster = \"two words\"\n", 1), []string{`.cluster: "two words" must be 1-63 letters`}},
		{"bad name", "[api]\nurl = \"http://x\"\n[[postgres]]\nname = \"a b\"\nhost = \"h\"\n", []string{`postgres[0] (a b).name`}},
		{"dsn and host", "[api]\nurl = \"http://x\"\n[[postgres]]\nname = \"a\"\nhost = \"h\"\ndsn = \"postgres://h/db\"\n", []string{"mutually exclusive"}},
		{"neither dsn nor host", "[api]\nurl = \"http://x\"\n[[postgres]]\nname = \"a\"\n", []string{"dsn or host: required"}},
		{"bad dsn", "[api]\nurl = \"http://x\"\n[[postgres]]\nname = \"a\"\ndsn = \"postgres://u:topsecret@h:notaport/db\"\n", []string{"postgres[0] (a): connection settings"}},
		{"bad sslmode", "[api]\nurl = \"http://x\"\n[[postgres]]\nname = \"a\"\nhost = \"h\"\nsslmode = \"maybe\"\n", []string{"sslmode"}},
		{"timeout not below interval", minimal + "timeout = \"10s\"\n", []string{"timeout: 10s must be shorter"}},
		{"replication interval not a multiple", minimal + "[pg_replication]\ninterval = \"15s\"\n", []string{"multiple of collector.interval"}},
		{"interval too small", minimal + "[collector]\ninterval = \"100ms\"\n", []string{"below the minimum"}},
		{"tiny disk", minimal + "[buffer]\ndisk_max_bytes = 10\n", []string{"buffer.disk_max_bytes"}},
		{"half a client cert", "[api]\nurl = \"https://x\"\ncert_file = \"/c.pem\"\n[[postgres]]\nname = \"a\"\nhost = \"h\"\n", []string{"api.cert_file and api.key_file"}},
		{"duplicate table", minimal + "[api]\n", []string{"c.toml:7:2", "already exists"}},
		{"log level", minimal + "[collector]\nlog_level = \"loud\"\n", []string{"log_level"}},
		{"more instances than a snapshot holds", "[api]\nurl = \"http://x\"\n" + manyInstances(257), []string{"257 instances, at most 256 per collector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tt.doc), host)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error leaks the DSN password: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, []byte(strings.Repeat("# padding\n", MaxFileBytes/10+1)), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	ok := filepath.Join(dir, "ok.toml")
	os.WriteFile(ok, []byte(minimal), 0o600)
	if _, err := Load(ok); err != nil {
		t.Error(err)
	}
}

func TestExplicitZeroesKept(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal+"[pg_replication]\nenabled = false\n[buffer]\nmemory_max_bytes = 0\n"), host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PgReplication.Enabled || cfg.Buffer.MemoryMaxBytes != 0 || cfg.Buffer.DiskMaxBytes != DefaultDiskMaxBytes {
		t.Errorf("pg_replication = %+v, buffer = %+v", cfg.PgReplication, cfg.Buffer)
	}
}

func TestHostnameFailure(t *testing.T) {
	_, err := Parse("c.toml", []byte(minimal), func() (string, error) { return "", errors.New("no uts") })
	if err == nil || !strings.Contains(err.Error(), "collector.name") {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[collector]\ninterval = \"1h\"\n" + minimal))
	f.Add([]byte("[[postgres]]\n[[postgres]]\n"))
	f.Add([]byte("a = [1, {b = 2}]\n"))
	f.Add([]byte("[api]\nurl = \"\\u0000\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, host)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses must be usable: defaults filled, bounds held.
		if cfg.Collector.Interval.D() < minInterval || len(cfg.Postgres) == 0 || cfg.Buffer.DiskMaxBytes < minBufferBytes {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
		for _, p := range cfg.Postgres {
			if p.Timeout.D() <= 0 || p.Timeout.D() >= cfg.Collector.Interval.D() {
				t.Fatalf("accepted timeout %s", p.Timeout.D())
			}
		}
	})
}

// The shipped example must load as it is.
func TestDeployExample(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "deploy", "collector.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Postgres) != 2 || !cfg.PgReplication.Enabled || cfg.Buffer.DiskMaxBytes != 256<<20 {
		t.Errorf("example = %+v", cfg)
	}
}
