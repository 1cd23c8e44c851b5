package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/remotewrite"
)

// remoteWriteEndpoints turns the configuration into endpoints: the authentication as a header, the
// CA as the TLS roots. Files are read once, at start.
func remoteWriteEndpoints(cfgs []config.RemoteWrite) ([]remotewrite.Endpoint, error) {
	var out []remotewrite.Endpoint
	for i, c := range cfgs {
		e := remotewrite.Endpoint{URL: c.URL, Headers: map[string]string{}, Timeout: c.Timeout.D(),
			QueueSamples: c.QueueSamples, BatchSamples: c.BatchSamples}
		for k, v := range c.Headers {
			e.Headers[k] = v
		}
		token := c.BearerToken
		if c.BearerTokenFile != "" {
			raw, err := os.ReadFile(c.BearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("remote_write[%d].bearer_token_file: %w", i, err)
			}
			token = strings.TrimSpace(string(raw))
		}
		switch {
		case token != "":
			e.Headers["Authorization"] = "Bearer " + token
		case c.BasicAuthUsername != "":
			e.Headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.BasicAuthUsername+":"+c.BasicAuthPassword))
		}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("remote_write[%d].ca_file: %w", i, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("remote_write[%d].ca_file %s: no PEM certificate", i, c.CAFile)
			}
			e.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		out = append(out, e)
	}
	return out, nil
}
