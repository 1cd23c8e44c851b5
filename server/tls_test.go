package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/devca"
	"github.com/pganalytics/pganalytics/server/config"
)

// verifyingClient trusts only ca and presents cert when given: the way collectors connect.
func verifyingClient(t *testing.T, ca *devca.CA, cert *devca.Pair) (*http.Client, *http.Transport) {
	t.Helper()
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// servedSerial makes a request and returns the serial number of the certificate the connection
// carries.
func servedSerial(t *testing.T, c *http.Client, url string) *big.Int {
	t.Helper()
	res, err := c.Get(url + "/api/v1/health/live")
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("live: %d", res.StatusCode)
	}
	return res.TLS.PeerCertificates[0].SerialNumber
}

// TestCertificateReload renews the server certificate on disk: new handshakes get the new one
// within seconds without a restart or a signal, an open connection keeps working, and files that
// do not load leave the certificate in force.
func TestCertificateReload(t *testing.T) {
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ca.IssueServer("api", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *config.Config) {
		c.TLS = config.TLS{Enabled: true, CertFile: first.CertFile, KeyFile: first.KeyFile}
	})
	kept, _ := verifyingClient(t, ca, nil)
	old := servedSerial(t, kept, ts.url)

	if _, err := ca.IssueServer("api", []string{"127.0.0.1"}, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		fresh, tr := verifyingClient(t, ca, nil)
		defer tr.CloseIdleConnections()
		return servedSerial(t, fresh, ts.url).Cmp(old) != 0
	})
	if got := servedSerial(t, kept, ts.url); got.Cmp(old) != 0 {
		t.Fatalf("the open connection was re-handshaken (serial %s, was %s): it was dropped", got, old)
	}

	t.Run("broken files keep the certificate in force", func(t *testing.T) {
		if err := os.WriteFile(first.CertFile, []byte("not a certificate"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ts.srv.ReloadTLS(); err == nil {
			t.Fatal("SIGHUP's reload of a broken certificate reported no error")
		}
		fresh, tr := verifyingClient(t, ca, nil)
		defer tr.CloseIdleConnections()
		_ = servedSerial(t, fresh, ts.url)
	})
}

// TestMutualTLSForCollectors: with require_collector_cert, registration and pushes need a client
// certificate from the client CA; users' requests do not.
func TestMutualTLSForCollectors(t *testing.T) {
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := ca.IssueServer("api", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := ca.IssueClient("collector-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := devca.New(t.TempDir(), "another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, err := other.IssueClient("stranger", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *config.Config) {
		c.TLS = config.TLS{Enabled: true, CertFile: serverCert.CertFile, KeyFile: serverCert.KeyFile,
			ClientCAFile: ca.CertFile, RequireCollectorCert: true}
	})
	withCert, _ := verifyingClient(t, ca, &clientCert)
	withoutCert, _ := verifyingClient(t, ca, nil)

	ts.client = withoutCert
	r := ts.do(req{method: "POST", path: "/api/v1/collectors/register",
		header: map[string]string{"X-Registration-Secret": testRegistrationSecret},
		body:   api.RegisterRequest{Name: "nocert", Hostname: "nocert.example"}})
	if r.status != http.StatusForbidden || r.errorCode() != codeForbidden {
		t.Fatalf("registration without a client certificate: %d %s", r.status, r.body)
	}
	mustStatus(t, ts.do(req{method: "GET", path: "/api/v1/collectors", token: ts.userToken("viewer", api.RoleViewer)}), http.StatusOK)

	ts.client = withCert
	reg := ts.register("withcert")
	mustStatus(t, ts.push(reg.Token, gzipJSON(t, samplePush(3)), true), http.StatusAccepted)

	ts.client = withoutCert
	if r := ts.push(reg.Token, gzipJSON(t, samplePush(3)), true); r.status != http.StatusForbidden {
		t.Fatalf("push without a client certificate: %d %s", r.status, r.body)
	}

	// Go clients send only a certificate the server's CA list accepts, so a stranger's arrives as
	// none: refused like one.
	stranger, _ := verifyingClient(t, ca, &strangerCert)
	ts.client = stranger
	r = ts.do(req{method: "POST", path: "/api/v1/collectors/register",
		header: map[string]string{"X-Registration-Secret": testRegistrationSecret},
		body:   api.RegisterRequest{Name: "stranger", Hostname: "stranger.example"}})
	if r.status != http.StatusForbidden {
		t.Fatalf("registration with another CA's certificate: %d %s", r.status, r.body)
	}
}
