package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/fileutil"
)

// maxTokenBytes bounds the token file: a JWT is well under a kilobyte.
const maxTokenBytes = 16 << 10

// Registrar is the API call registration needs (client.Client implements it).
type Registrar interface {
	Register(ctx context.Context, registrationSecret string, req api.RegisterRequest) (api.RegisterResponse, error)
}

// ErrAlreadyRegistered is returned when the token file exists and force is false.
var ErrAlreadyRegistered = errors.New("a token file already exists")

// Register registers the collector under name/hostname with the registration secret and stores the
// token at tokenFile (mode 0600, written atomically; its directory is created 0700 if missing).
func Register(ctx context.Context, r Registrar, secret, name, hostname, tokenFile string, force bool) (api.RegisterResponse, error) {
	if strings.TrimSpace(secret) == "" {
		return api.RegisterResponse{}, errors.New("the registration secret is empty")
	}
	if _, err := os.Stat(tokenFile); err == nil && !force {
		return api.RegisterResponse{}, fmt.Errorf("%w at %s (use --force to register again)", ErrAlreadyRegistered, tokenFile)
	}
	resp, err := r.Register(ctx, secret, api.RegisterRequest{Name: name, Hostname: hostname})
	if err != nil {
		return resp, fmt.Errorf("register: %w", err)
	}
	if resp.Token == "" {
		return resp, errors.New("register: the API answered without a token")
	}
	if err := writeSecretFile(tokenFile, []byte(resp.Token+"\n")); err != nil {
		return resp, err
	}
	return resp, nil
}

// writeSecretFile writes data readable by the owner only, whole or not at all.
func writeSecretFile(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token directory: %w", err)
	}
	if err := fileutil.WriteAtomic(name, data, 0o600); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

// ReadToken reads the collector token written by Register.
func ReadToken(name string) (string, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no collector token at %s: run `pganalytics register --config <file>` first", name)
	}
	if err != nil {
		return "", fmt.Errorf("collector token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("collector token: %w", err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("collector token %s: larger than %d bytes", name, maxTokenBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("collector token %s: empty or malformed", name)
	}
	return tok, nil
}

// ReadSecret reads the registration secret: from the file when one is named, else from the
// environment value env (never from the command line).
func ReadSecret(file, env string) (string, error) {
	if file == "" {
		if strings.TrimSpace(env) == "" {
			return "", errors.New("no registration secret: set REGISTRATION_SECRET or pass --secret-file")
		}
		return strings.TrimSpace(env), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("secret file %s: larger than %d bytes", file, maxTokenBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s: empty", file)
	}
	return s, nil
}
