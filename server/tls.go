package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pganalytics/pganalytics/server/config"
)

// tlsWatchEvery is how often the certificate files are checked for a change. A stat of two or three
// files is nothing; a renewed certificate is in force within seconds without a signal.
const tlsWatchEvery = 2 * time.Second

// TLS is the server's certificate and, with mutual TLS, the CA its clients' certificates must
// chain to. Both reload from their files (Reload, on SIGHUP and when the files change) without
// dropping a connection: each handshake takes what is in force at that moment.
type TLS struct {
	files config.TLS

	mu    sync.Mutex // serialises Reload
	stamp string     // size and mtime of the files last loaded
	state atomic.Pointer[tlsState]
}

type tlsState struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool // nil without mutual TLS
}

// LoadTLS reads the configured certificate, key and client CA (nil, nil when TLS is off).
func LoadTLS(cfg *config.Config) (*TLS, error) {
	if !cfg.TLS.Enabled {
		return nil, nil
	}
	t := &TLS{files: cfg.TLS}
	if _, err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the files again when they changed since the last load; changed says whether they
// had. A file that does not load leaves what is in force in place.
func (t *TLS) Reload() (changed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	stamp, err := t.fileStamp()
	if err != nil {
		return false, err
	}
	if stamp == t.stamp {
		return false, nil
	}
	cert, err := tls.LoadX509KeyPair(t.files.CertFile, t.files.KeyFile)
	if err != nil {
		return false, fmt.Errorf("load TLS certificate %s and key %s: %w", t.files.CertFile, t.files.KeyFile, err)
	}
	st := &tlsState{cert: &cert}
	if t.files.ClientCAFile != "" {
		pem, err := os.ReadFile(t.files.ClientCAFile)
		if err != nil {
			return false, fmt.Errorf("load TLS client CA: %w", err)
		}
		st.clientCAs = x509.NewCertPool()
		if !st.clientCAs.AppendCertsFromPEM(pem) {
			return false, fmt.Errorf("load TLS client CA %s: no PEM certificate in it", t.files.ClientCAFile)
		}
	}
	t.state.Store(st)
	t.stamp = stamp
	return true, nil
}

func (t *TLS) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{t.files.CertFile, t.files.KeyFile, t.files.ClientCAFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			if f == t.files.ClientCAFile {
				return "", fmt.Errorf("load TLS client CA: %w", err)
			}
			return "", fmt.Errorf("load TLS certificate %s and key %s: %w", t.files.CertFile, t.files.KeyFile, err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// NotAfter is when the certificate in force expires.
func (t *TLS) NotAfter() time.Time {
	return t.state.Load().cert.Leaf.NotAfter
}

// Config is the listener's configuration: TLS 1.2 and later, the certificate and client CA in
// force at each handshake; with a client CA, a client certificate is verified when given
// (which requests need one is the server's decision, see require_collector_cert).
func (t *TLS) Config() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := t.state.Load()
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*st.cert}}
		if st.clientCAs != nil {
			c.ClientCAs = st.clientCAs
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
		return c, nil
	}
	return base
}

// watch reloads the files when they change until ctx ends, logging what happened.
func (t *TLS) watch(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(tlsWatchEvery)
	defer tick.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		changed, err := t.Reload()
		switch {
		case err != nil && !failing:
			failing = true // once per bad spell: the files may be mid-rotation
			log.Error("TLS files changed but do not load; the certificate in force stays", "err", err)
		case err == nil && changed:
			failing = false
			log.Info("TLS certificate reloaded", "not_after", t.NotAfter().UTC().Format(time.RFC3339))
		case err == nil:
			failing = false
		}
	}
}

// ReloadTLS reloads the certificate files now (SIGHUP).
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	changed, err := s.tls.Reload()
	if err != nil {
		return err
	}
	if changed {
		s.log.Info("TLS certificate reloaded", "not_after", s.tls.NotAfter().UTC().Format(time.RFC3339))
	}
	return nil
}

// errNoClientCert is a collector request over a connection without a verified client certificate
// while require_collector_cert is set.
var errNoClientCert = errors.New("a client certificate is required")
