package devca

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("ca.crt holds no certificate")
	}
	server, err := ca.IssueServer("api", []string{"localhost", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueClient("collector-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !server.NotAfter.Before(time.Now().Add(time.Hour + time.Minute)) {
		t.Errorf("a leaf outlives its CA: %s", server.NotAfter)
	}
	tests := []struct {
		name  string
		pair  Pair
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"server by name", server, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server by IP", server, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server, wrong host", server, "example.com", x509.ExtKeyUsageServerAuth, false},
		{"server used as a client", server, "", x509.ExtKeyUsageClientAuth, false},
		{"client", client, "", x509.ExtKeyUsageClientAuth, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, files := range [][2]string{{tt.pair.CertFile, tt.pair.KeyFile}, {tt.pair.Bundle, tt.pair.Bundle}} {
				kp, err := tls.LoadX509KeyPair(files[0], files[1])
				if err != nil {
					t.Fatal(err)
				}
				_, err = kp.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
				if (err == nil) != tt.ok {
					t.Fatalf("verify %s: %v, want ok=%v", files[0], err, tt.ok)
				}
			}
		})
	}
	for _, f := range []string{server.KeyFile, server.Bundle, ca.Dir + "/ca.key"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if _, err := ca.IssueServer("../escape", []string{"localhost"}, time.Hour); err == nil {
		t.Error("a name with a path in it was accepted")
	}
}
