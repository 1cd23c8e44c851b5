package deploy

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/devca"
)

// TestHAProxyConfig checks deploy/haproxy/haproxy.cfg with haproxy itself (make test installs it),
// with every variable it documents set and real certificates; a variable left unset is refused.
func TestHAProxyConfig(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not found: make test installs it (apt-get install haproxy)")
	}
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := ca.IssueServer("lb", []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PGA_LB_BIND": "127.0.0.1:8443", "PGA_LB_CERT": lb.Bundle, "PGA_LB_STATS": "127.0.0.1:8404",
		"PGA_API_CA": ca.CertFile, "PGA_API_TLS_NAME": "localhost",
		"PGA_API_1": "127.0.0.1:8081", "PGA_API_2": "127.0.0.1:8082",
	}
	cfg, err := os.ReadFile("haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	for name := range env {
		if !strings.Contains(string(cfg), "${"+name+"}") || !strings.Contains(string(cfg), name+" ") {
			t.Errorf("%s is not both used and documented in haproxy.cfg", name)
		}
	}
	check := func(env map[string]string) ([]byte, error) {
		cmd := exec.Command(haproxy, "-c", "-f", "haproxy/haproxy.cfg")
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		return cmd.CombinedOutput()
	}
	if out, err := check(env); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	delete(env, "PGA_API_CA")
	if out, err := check(env); err == nil {
		t.Fatalf("haproxy -c accepted the configuration without PGA_API_CA:\n%s", out)
	}
}
