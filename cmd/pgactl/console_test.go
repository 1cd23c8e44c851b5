package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

// TestConsoleRefusesBadSetup checks the errors raised before the screen opens: each is a usage error
// (exit 2) that names what to set.
func TestConsoleRefusesBadSetup(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no API", nil, nil, client.EnvAPIURL},
		{"no credentials", map[string]string{client.EnvAPIURL: "http://127.0.0.1:1"}, nil, client.EnvUsername},
		{"no password and no terminal", map[string]string{client.EnvAPIURL: "http://127.0.0.1:1", client.EnvUsername: "admin"}, nil, client.EnvPassword},
		{"bad theme", map[string]string{client.EnvAPIURL: "http://127.0.0.1:1", client.EnvUsername: "admin", client.EnvPassword: "pw"},
			[]string{"--theme", "pink"}, "want auto, dark or light"},
		{"bad URL", map[string]string{client.EnvUsername: "admin", client.EnvPassword: "pw"}, []string{"--api-url", "ftp://x"}, "scheme"},
		{"refresh below a second", map[string]string{client.EnvAPIURL: "http://127.0.0.1:1", client.EnvUsername: "admin", client.EnvPassword: "pw"},
			[]string{"--refresh", "500ms"}, "want at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			t.Setenv("PGACTL_THEME", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cmd := newConsoleCmd()
			cmd.SetArgs(tt.args)
			cmd.SetIn(strings.NewReader(""))
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			err := cmd.Execute()
			if code := exitCode(err); code != exitcode.Usage {
				t.Fatalf("exit %d (%v), want %d", code, err, exitcode.Usage)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
