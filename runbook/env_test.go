package runbook

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvironmentReferences(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "db-password", "s3cr3t-from-file\n")
	writeFile(t, dir, "imported.env", "IMPORTED=from-import\nOVERRIDDEN=import\n")
	t.Setenv("RB_TEST_API", "http://127.0.0.1:9999")
	t.Setenv("RB_TEST_JWT_SECRET", "jwt-secret-value-0123456789")
	src := `
description = "test"
import = ["imported.env"]
[vars]
API_URL = "${env:RB_TEST_API}"
HEALTH_URL = "${API_URL}/api/v1/health"
DB_PASSWORD = "${file:db-password}"
DATABASE_URL = "postgres://app:${DB_PASSWORD}@127.0.0.1/app"
JWT_SECRET_KEY = "${env:RB_TEST_JWT_SECRET}"
PRICE = "$$5 and $HOME stays"
OVERRIDDEN = "vars"
FROM_IMPORT = "${IMPORTED}!"
MISSING_ENV = "${env:RB_TEST_NOT_SET}"
USES_MISSING = "x-${MISSING_ENV}"
UNDEFINED = "${NOPE}"
CYCLE_A = "${CYCLE_B}"
CYCLE_B = "${CYCLE_A}"
STATE = "${PGACTL_STATE_DIR}/x"
`
	env, err := ParseEnvironment(filepath.Join(dir, "env.toml"), []byte(src), "/state")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		want    string
		wantErr string
	}{
		{"API_URL", "http://127.0.0.1:9999", ""},
		{"HEALTH_URL", "http://127.0.0.1:9999/api/v1/health", ""},
		{"DB_PASSWORD", "s3cr3t-from-file", ""},
		{"DATABASE_URL", "postgres://app:s3cr3t-from-file@127.0.0.1/app", ""},
		{"PRICE", "$5 and $HOME stays", ""},
		{"OVERRIDDEN", "vars", ""},
		{"IMPORTED", "from-import", ""},
		{"FROM_IMPORT", "from-import!", ""},
		{"STATE", "/state/x", ""},
		{"PGACTL_ENV", filepath.Join(dir, "env.toml"), ""},
		{"MISSING_ENV", "", "RB_TEST_NOT_SET is not set"},
		{"USES_MISSING", "", "RB_TEST_NOT_SET is not set"},
		{"UNDEFINED", "", "${NOPE}: not defined"},
		{"CYCLE_A", "", "reference cycle"},
		{"NOT_IN_FILE", "", "does not define NOT_IN_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.Lookup(tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Lookup = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Lookup = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	t.Run("redaction", func(t *testing.T) {
		text := "pw s3cr3t-from-file jwt jwt-secret-value-0123456789 url http://127.0.0.1:9999"
		got := env.Redact(text)
		for _, secret := range []string{"s3cr3t-from-file", "jwt-secret-value-0123456789"} {
			if strings.Contains(got, secret) {
				t.Errorf("Redact left %q in %q", secret, got)
			}
		}
		if !strings.Contains(got, "http://127.0.0.1:9999") {
			t.Errorf("Redact hid a non-secret value: %q", got)
		}
		if !env.IsSecret("JWT_SECRET_KEY") || !env.IsSecret("DB_PASSWORD") || env.IsSecret("API_URL") {
			t.Error("secret classification wrong")
		}
	})
}

func TestEnvironmentFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string
	}{
		{"syntax", "[vars\nA = \"b\"\n", 1, ""},
		{"unknown key", "loopback = true\n", 1, "unknown key"},
		{"non-string var", "[vars]\nA = 1\n", 2, ""},
		{"bad var name", "[vars]\n\"A-B\" = \"x\"\n", 2, "variable name"},
		{"builtin redefined", "[vars]\nPGACTL_STATE_DIR = \"/x\"\n", 2, "defined by pgactl"},
		{"bad command name", "[commands]\n\"Start-API\" = \"true\"\n", 2, "command name"},
		{"empty command", "[commands]\nstart = \" \"\n", 2, "empty"},
		{"missing import", "import = [\"nope.env\"]\n", 0, "no such file"},
		{"import path with var", "import = [\"${API}/x.env\"]\n", 0, "import paths may use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnvironment(filepath.Join(dir, "env.toml"), []byte(tt.src), dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			var pe *ParseError
			if tt.wantLine > 0 && (!errors.As(err, &pe) || pe.Line != tt.wantLine) {
				t.Errorf("error %v: want line %d", err, tt.wantLine)
			}
		})
	}
}

func TestLoopbackOnlyEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		value string
		ok    bool
	}{
		{"API_URL", "http://127.0.0.1:8080", true},
		{"API_URL", "http://localhost:8080", true},
		{"API_URL", "https://[::1]:8443", true},
		{"API_URL", "http://127.1.2.3", true},
		{"API_URL", "http://10.0.0.5:8080", false},
		{"API_URL", "https://api.example.com", false},
		{"API_URL", "http://localhost.example.com", false},
		{"DATABASE_URL", "postgres://u:pw@127.0.0.1:5432/db", true},
		{"DATABASE_URL", "postgres://u@db.example.com/db", false},
		{"DATABASE_URL", "postgres://u@127.0.0.1,db.example.com/db", false},
		{"DATABASE_URL", "host=/var/run/postgresql dbname=x", true},
		{"DATABASE_URL", "host=192.0.2.10 dbname=x", false},
		{"PGHOST", "localhost", true},
		{"PGHOST", "db1", false},
		{"COLLECTOR_HOSTNAME", "collector.staging", true}, // a label, not an address
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ParseEnvironment(filepath.Join(dir, "e.toml"),
				[]byte(envTOML(true, map[string]string{tt.name: tt.value}, nil)), dir)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "loopback")) {
				t.Fatalf("accepted (err %v)", err)
			}
		})
	}
	t.Run("imported values are checked too", func(t *testing.T) {
		state := t.TempDir()
		writeDemoEnv(t, state, "http://203.0.113.7:8080")
		_, err := LoadEnvironment("demo", state)
		if err == nil || !strings.Contains(err.Error(), "203.0.113.7") {
			t.Fatalf("shipped demo accepted a remote API: %v", err)
		}
	})
}

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     map[string]string
		wantLine int
	}{
		{"plain", "A=1\nB=two words\n", map[string]string{"A": "1", "B": "two words"}, 0},
		{"comments and blanks", "# c\n\n  # indented\nA=x=y\n", map[string]string{"A": "x=y"}, 0},
		{"verbatim quotes", "A=\"q\"\n", map[string]string{"A": `"q"`}, 0},
		{"crlf", "A=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}, 0},
		{"empty value", "A=\n", map[string]string{"A": ""}, 0},
		{"no equals", "A=1\nJUNK\n", nil, 2},
		{"bad key", "A=1\n\nB C=3\n", nil, 3},
		{"space before equals", "A =1\n", nil, 1},
		{"duplicate", "A=1\nA=2\n", nil, 2},
		{"nul", "A=\x00\n", nil, 1},
		{"invalid utf8", "A=\xff\n", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDotenv("x.env", []byte(tt.in))
			if tt.wantLine > 0 {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Line != tt.wantLine {
					t.Fatalf("err = %v, want a ParseError on line %d", err, tt.wantLine)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestExpand(t *testing.T) {
	lookup := func(ref string) (string, error) {
		if ref == "A" {
			return "a", nil
		}
		return "", errors.New("undefined " + ref)
	}
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"${A}/${A}", "a/a", true},
		{"$$", "$", true},
		{"$${A}", "${A}", true},
		{"$A $", "$A $", true},
		{"x${A", "", false},
		{"${B}", "", false},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, lookup)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
