package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

const contextsTOML = `
current_context = "staging"

[contexts.staging]
api_url = "https://staging.example.com"
ca_file = "certs/ca.pem"
username = "file-admin"
password_file = "admin.pass"
viewer_username = "file-viewer"
viewer_password_file = "/abs/viewer.pass"

[contexts.demo]
api_url = "http://127.0.0.1:8080"
username = "demo-admin"
database_url = "postgres://pganalytics@127.0.0.1:5432/pganalytics"
insecure_skip_verify = true
`

func TestResolveContextPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "pgactl", "config.toml"), contextsTOML, 0o600)
	writeFile(t, filepath.Join(dir, "pgactl", "admin.pass"), "file-password\n", 0o600)
	flagPass := writeFile(t, filepath.Join(dir, "flag.pass"), "flag-password\r\n", 0o600)

	tests := []struct {
		name  string
		flags Context
		path  string
		env   map[string]string
		want  Context
	}{
		{
			name: "file only, current context, relative paths resolved",
			path: cfg,
			env:  map[string]string{EnvViewerPassword: "env-viewer"},
			want: Context{
				Name: "staging", APIURL: "https://staging.example.com", CAFile: filepath.Join(dir, "pgactl", "certs", "ca.pem"),
				Username: "file-admin", Password: "file-password", PasswordFile: filepath.Join(dir, "pgactl", "admin.pass"),
				ViewerUsername: "file-viewer", ViewerPassword: "env-viewer",
			},
		},
		{
			name: "env beats file",
			path: cfg,
			env: map[string]string{
				EnvAPIURL: "https://env.example.com", EnvUsername: "env-admin", EnvPassword: "env-password",
				EnvViewerPassword: "env-viewer", EnvCAFile: "/env/ca.pem", EnvDatabaseURL: "postgres://env@h/db",
			},
			want: Context{
				Name: "staging", APIURL: "https://env.example.com", CAFile: "/env/ca.pem",
				Username: "env-admin", Password: "env-password", ViewerUsername: "file-viewer", ViewerPassword: "env-viewer",
				DatabaseURL: "postgres://env@h/db",
			},
		},
		{
			name:  "flags beat env, a flag password file beats an env password",
			path:  cfg,
			flags: Context{APIURL: "https://flag.example.com", Username: "flag-admin", PasswordFile: flagPass, InsecureSkipVerify: true},
			env:   map[string]string{EnvAPIURL: "https://env.example.com", EnvPassword: "env-password", EnvViewerPassword: "v"},
			want: Context{
				Name: "staging", APIURL: "https://flag.example.com", CAFile: filepath.Join(dir, "pgactl", "certs", "ca.pem"),
				Username: "flag-admin", Password: "flag-password", PasswordFile: flagPass,
				ViewerUsername: "file-viewer", ViewerPassword: "v", InsecureSkipVerify: true,
			},
		},
		{
			name: "PGACTL_CONTEXT picks another context",
			path: cfg,
			env:  map[string]string{EnvContext: "demo", EnvPassword: "p"},
			want: Context{
				Name: "demo", APIURL: "http://127.0.0.1:8080", Username: "demo-admin", Password: "p",
				DatabaseURL: "postgres://pganalytics@127.0.0.1:5432/pganalytics", InsecureSkipVerify: true,
			},
		},
		{
			name:  "flag context beats PGACTL_CONTEXT",
			path:  cfg,
			flags: Context{Name: "demo"},
			env:   map[string]string{EnvContext: "staging"},
			want: Context{
				Name: "demo", APIURL: "http://127.0.0.1:8080", Username: "demo-admin",
				DatabaseURL: "postgres://pganalytics@127.0.0.1:5432/pganalytics", InsecureSkipVerify: true,
			},
		},
		{
			name: "PGACTL_CONFIG names the file",
			env:  map[string]string{EnvConfig: cfg, EnvContext: "demo"},
			want: Context{
				Name: "demo", APIURL: "http://127.0.0.1:8080", Username: "demo-admin",
				DatabaseURL: "postgres://pganalytics@127.0.0.1:5432/pganalytics", InsecureSkipVerify: true,
			},
		},
		{
			name: "default path under XDG_CONFIG_HOME",
			env:  map[string]string{"XDG_CONFIG_HOME": dir, EnvContext: "demo"},
			want: Context{
				Name: "demo", APIURL: "http://127.0.0.1:8080", Username: "demo-admin",
				DatabaseURL: "postgres://pganalytics@127.0.0.1:5432/pganalytics", InsecureSkipVerify: true,
			},
		},
		{
			name: "missing default file is fine with env only",
			env:  map[string]string{"HOME": filepath.Join(dir, "nohome"), EnvAPIURL: "http://h:1", EnvToken: "tok"},
			want: Context{APIURL: "http://h:1", Token: "tok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveContext(tt.flags, tt.path, envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestResolveContextErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.toml"), contextsTOML, 0o600)
	secretOpen := writeFile(t, filepath.Join(dir, "open.toml"), "[contexts.x]\napi_url = \"http://h\"\npassword = \"hunter2hunter2\"\n", 0o644)
	dsnOpen := writeFile(t, filepath.Join(dir, "dsn.toml"), "[contexts.x]\napi_url = \"http://h\"\ndatabase_url = \"postgres://u:pw@h/db\"\n", 0o640)
	typo := writeFile(t, filepath.Join(dir, "typo.toml"), "[contexts.x]\napi_url = \"http://h\"\npasword = \"x\"\n", 0o600)
	emptyPass := writeFile(t, filepath.Join(dir, "empty.pass"), "\n", 0o600)
	tests := []struct {
		name    string
		flags   Context
		path    string
		env     map[string]string
		wantErr string
	}{
		{"no API URL anywhere", Context{}, "", map[string]string{"HOME": dir}, "no API URL"},
		{"explicit file missing", Context{}, filepath.Join(dir, "missing.toml"), nil, "no such file"},
		{"PGACTL_CONFIG missing", Context{}, "", map[string]string{EnvConfig: filepath.Join(dir, "missing.toml")}, "no such file"},
		{"unknown context", Context{Name: "prod"}, good, nil, `context "prod" is not in`},
		{"context without file", Context{Name: "prod"}, "", map[string]string{"HOME": filepath.Join(dir, "nohome")}, "does not exist"},
		{"secrets in a world-readable file", Context{}, secretOpen, nil, "chmod 600"},
		{"DSN password in a group-readable file", Context{}, dsnOpen, nil, "chmod 600"},
		{"typo in a key", Context{}, typo, nil, `unknown key "contexts.x.pasword"`},
		{"empty password file", Context{APIURL: "http://h", PasswordFile: emptyPass}, "", map[string]string{"HOME": filepath.Join(dir, "nohome")}, "is empty"},
		{"missing password file", Context{APIURL: "http://h"}, "", map[string]string{"HOME": filepath.Join(dir, "nohome"), EnvPasswordFile: filepath.Join(dir, "nope")}, "password file"},
		{"bad API URL from env", Context{}, "", map[string]string{"HOME": filepath.Join(dir, "nohome"), EnvAPIURL: "localhost:8080"}, "base URL"},
		{"config is a directory", Context{}, dir, nil, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveContext(tt.flags, tt.path, envMap(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Error("error leaks the password")
			}
		})
	}
}

func TestParseContextsFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", contextsTOML, ""},
		{"empty file", "", ""},
		{"syntax error", "[contexts.x\n", "expected"},
		{"current context undefined", "current_context = \"nope\"\n", "not defined"},
		{"password and file", "[contexts.x]\npassword = \"a\"\npassword_file = \"b\"\n", "not both"},
		{"viewer password and file", "[contexts.x]\nviewer_password = \"a\"\nviewer_password_file = \"b\"\n", "not both"},
		{"bad url", "[contexts.x]\napi_url = \"ftp://h\"\n", "scheme"},
		{"empty name", "[contexts.\"\"]\napi_url = \"http://h\"\n", "empty name"},
		{"wrong type", "[contexts.x]\ninsecure_skip_verify = \"yes\"\n", "bool"},
		{"too large", strings.Repeat("#", maxConfigBytes+1), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseContextsFile("contexts.toml", []byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseContextsFile(f *testing.F) {
	for _, seed := range []string{
		contextsTOML,
		"current_context = \"a\"\n[contexts.a]\napi_url = \"http://h\"\n",
		"[contexts.x]\ninsecure_skip_verify = true\n",
		"[[contexts]]\n",
		"contexts = 1\n",
		"\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := parseContextsFile("contexts.toml", data)
		if err != nil {
			return
		}
		if cf.CurrentContext != "" {
			if _, ok := cf.Contexts[cf.CurrentContext]; !ok {
				t.Fatalf("accepted an undefined current_context %q", cf.CurrentContext)
			}
		}
		for name, c := range cf.Contexts {
			if strings.TrimSpace(name) == "" {
				t.Fatal("accepted an empty context name")
			}
			if c.APIURL != "" {
				if _, err := normalizeBaseURL(c.APIURL); err != nil {
					t.Fatalf("accepted a bad api_url: %v", err)
				}
			}
		}
	})
}
