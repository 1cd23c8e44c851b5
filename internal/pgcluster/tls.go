package pgcluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// EnableTLS makes the server accept TLS (1.2 and later) with the certificate and key, copied into
// the data directory (a standby cloned afterwards inherits them and the settings), and reloads
// it. Connections without TLS are still accepted: pg_hba.conf is left alone.
func (c *Cluster) EnableTLS(ctx context.Context, certFile, keyFile string) error {
	for src, dst := range map[string]string{certFile: "server.crt", keyFile: "server.key"} {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("enable TLS on %s: %w", c.Name, err)
		}
		if err := writeServerFile(filepath.Join(c.DataDir, dst), data); err != nil {
			return fmt.Errorf("enable TLS on %s: %w", c.Name, err)
		}
	}
	if err := c.appendSettings(map[string]string{
		"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key",
		"ssl_min_protocol_version": "TLSv1.2",
	}); err != nil {
		return fmt.Errorf("enable TLS on %s: %w", c.Name, err)
	}
	if err := c.exec(ctx, "postgres", "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("enable TLS on %s: reload: %w", c.Name, err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := poll(wait, func() (bool, error) {
		return c.queryBool(wait, "postgres", "SELECT current_setting('ssl')::bool")
	}); err != nil {
		return fmt.Errorf("enable TLS on %s: the server did not turn ssl on (log: %s): %w", c.Name, c.LogFile(), err)
	}
	return nil
}

// VerifyFullDSN is DSN with the server's certificate verified against caFile, host name included.
func (c *Cluster) VerifyFullDSN(user, db, caFile string) string {
	u := url.URL{
		Scheme: "postgres", User: url.User(user), Host: fmt.Sprintf("127.0.0.1:%d", c.Port), Path: "/" + db,
		RawQuery: url.Values{"sslmode": {"verify-full"}, "sslrootcert": {caFile}}.Encode(),
	}
	return u.String()
}
