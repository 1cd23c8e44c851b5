// Package devca is a throwaway certificate authority for the demo and the tests: it makes TLS the
// default where nobody has certificates yet. Its keys live in plain files next to the demo's
// state and die with it; production certificates come from the operator's own CA.
package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/pganalytics/pganalytics/internal/fileutil"
)

// CA issues certificates into Dir.
type CA struct {
	Dir      string
	CertFile string // ca.crt: what clients trust
	cert     *x509.Certificate
	key      crypto.Signer
}

// Pair is an issued certificate: CertFile and KeyFile in PEM, and Bundle with both (the form
// haproxy's crt wants).
type Pair struct {
	CertFile, KeyFile, Bundle string
	NotAfter                  time.Time
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// New creates a CA valid for validFor, writing ca.crt and ca.key into dir (created 0700).
func New(dir, commonName string, validFor time.Duration) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"pgAnalytics throwaway CA"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devca: sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	ca := &CA{Dir: dir, CertFile: filepath.Join(dir, "ca.crt"), cert: cert, key: key}
	if err := writePEM(ca.CertFile, 0o644, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), key); err != nil {
		return nil, err
	}
	return ca, nil
}

// IssueServer issues name.crt/name.key for the hosts (DNS names or IP addresses).
func (ca *CA) IssueServer(name string, hosts []string, validFor time.Duration) (Pair, error) {
	if len(hosts) == 0 {
		return Pair{}, errors.New("devca: a server certificate needs at least one host")
	}
	tmpl := ca.leaf(name, validFor, x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(name, tmpl)
}

// IssueClient issues name.crt/name.key for TLS client authentication as name.
func (ca *CA) IssueClient(name string, validFor time.Duration) (Pair, error) {
	return ca.issue(name, ca.leaf(name, validFor, x509.ExtKeyUsageClientAuth))
}

func (ca *CA) leaf(name string, validFor time.Duration, usage x509.ExtKeyUsage) *x509.Certificate {
	now := time.Now()
	notAfter := now.Add(validFor)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func (ca *CA) issue(name string, tmpl *x509.Certificate) (Pair, error) {
	if !nameRe.MatchString(name) {
		return Pair{}, fmt.Errorf("devca: invalid certificate name %q", name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("devca: key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, fmt.Errorf("devca: sign %s: %w", name, err)
	}
	p := Pair{
		CertFile: filepath.Join(ca.Dir, name+".crt"),
		KeyFile:  filepath.Join(ca.Dir, name+".key"),
		Bundle:   filepath.Join(ca.Dir, name+".pem"),
		NotAfter: tmpl.NotAfter,
	}
	if err := writePEM(p.CertFile, 0o644, "CERTIFICATE", der); err != nil {
		return Pair{}, err
	}
	if err := writeKey(p.KeyFile, key); err != nil {
		return Pair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("devca: %w", err)
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := write(p.Bundle, bundle, 0o600); err != nil {
		return Pair{}, err
	}
	return p, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("devca: %w", err)
	}
	return writePEM(path, 0o600, "PRIVATE KEY", der)
}

func writePEM(path string, mode os.FileMode, kind string, der []byte) error {
	return write(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

// write replaces path whole (a reissued certificate is never seen half written by a reloader).
func write(path string, data []byte, mode os.FileMode) error {
	if err := fileutil.WriteAtomic(path, data, mode); err != nil {
		return fmt.Errorf("devca: %w", err)
	}
	return nil
}
