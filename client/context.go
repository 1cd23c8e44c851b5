package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// Environment variables pgactl reads (a contract for scripts and the demo's env file).
const (
	EnvConfig             = "PGACTL_CONFIG"
	EnvContext            = "PGACTL_CONTEXT"
	EnvAPIURL             = "PGACTL_API_URL"
	EnvCAFile             = "PGACTL_CA_FILE"
	EnvUsername           = "PGACTL_USERNAME"
	EnvPassword           = "PGACTL_PASSWORD"
	EnvPasswordFile       = "PGACTL_PASSWORD_FILE"
	EnvViewerUsername     = "PGACTL_VIEWER_USERNAME"
	EnvViewerPassword     = "PGACTL_VIEWER_PASSWORD"
	EnvViewerPasswordFile = "PGACTL_VIEWER_PASSWORD_FILE"
	EnvDatabaseURL        = "PGACTL_DATABASE_URL"
	EnvToken              = "PGACTL_TOKEN"
)

const (
	maxConfigBytes   = 1 << 20
	maxPasswordBytes = 4 << 10
)

// Context is everything pgactl needs to reach one deployment: where the API is, how to trust it, and
// whose credentials to use. Passwords come from the environment, a password file, the contexts file
// or a prompt — never from argv.
type Context struct {
	Name                                               string
	APIURL                                             string
	CAFile                                             string
	Username, Password, PasswordFile                   string
	ViewerUsername, ViewerPassword, ViewerPasswordFile string
	DatabaseURL                                        string // optional: enables the SQL checks
	Token                                              string // a user access token, instead of a login
	InsecureSkipVerify                                 bool
}

// Options turns the context into client options (no token: callers log in or set Token).
func (c Context) Options() Options {
	return Options{BaseURL: c.APIURL, CAFile: c.CAFile, Token: c.Token, InsecureSkipVerify: c.InsecureSkipVerify}
}

// contextsFile is the TOML layout of ~/.config/pgactl/config.toml:
//
//	current_context = "staging"
//	[contexts.staging]
//	api_url = "https://pganalytics.staging.example.com"
//	ca_file = "ca.pem"              # relative paths are relative to this file
//	username = "admin"
//	password_file = "admin.pass"
type contextsFile struct {
	CurrentContext string                 `toml:"current_context"`
	Contexts       map[string]fileContext `toml:"contexts"`
}

type fileContext struct {
	APIURL             string `toml:"api_url"`
	CAFile             string `toml:"ca_file"`
	Username           string `toml:"username"`
	Password           string `toml:"password"`
	PasswordFile       string `toml:"password_file"`
	ViewerUsername     string `toml:"viewer_username"`
	ViewerPassword     string `toml:"viewer_password"`
	ViewerPasswordFile string `toml:"viewer_password_file"`
	DatabaseURL        string `toml:"database_url"`
	Token              string `toml:"token"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
}

// holdsSecrets reports whether the file context carries credentials that must not be world-readable.
func (f fileContext) holdsSecrets() bool {
	if f.Password != "" || f.ViewerPassword != "" || f.Token != "" {
		return true
	}
	if u, err := url.Parse(f.DatabaseURL); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return false
}

// parseContextsFile decodes and validates a contexts file. Unknown keys are errors, so a typo never
// silently drops a setting.
func parseContextsFile(path string, data []byte) (contextsFile, error) {
	var cf contextsFile
	if len(data) > maxConfigBytes {
		return cf, fmt.Errorf("%s: larger than %d bytes", path, maxConfigBytes)
	}
	if err := tomlfile.Decode(path, data, &cf); err != nil {
		return contextsFile{}, err // path:line:column: what
	}
	for name, c := range cf.Contexts {
		if strings.TrimSpace(name) == "" {
			return contextsFile{}, errors.New("a context has an empty name")
		}
		if c.Password != "" && c.PasswordFile != "" {
			return contextsFile{}, fmt.Errorf("context %q: set password or password_file, not both", name)
		}
		if c.ViewerPassword != "" && c.ViewerPasswordFile != "" {
			return contextsFile{}, fmt.Errorf("context %q: set viewer_password or viewer_password_file, not both", name)
		}
		if c.APIURL != "" {
			if _, err := normalizeBaseURL(c.APIURL); err != nil {
				return contextsFile{}, fmt.Errorf("context %q: %w", name, err)
			}
		}
	}
	if cf.CurrentContext != "" {
		if _, ok := cf.Contexts[cf.CurrentContext]; !ok {
			return contextsFile{}, fmt.Errorf("current_context %q is not defined", cf.CurrentContext)
		}
	}
	return cf, nil
}

// DefaultConfigPath is $XDG_CONFIG_HOME/pgactl/config.toml, else ~/.config/pgactl/config.toml; empty
// when neither variable is set.
func DefaultConfigPath(getenv func(string) string) string {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "pgactl", "config.toml")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "pgactl", "config.toml")
	}
	return ""
}

// ErrNoAPIURL: no flag, variable or context names the API.
var ErrNoAPIURL = errors.New("no API URL")

// ResolveContext merges flags, environment and contexts file, field by field, in that precedence.
// configPath (the --config flag) overrides PGACTL_CONFIG, which overrides the default path; a file
// named explicitly must exist, the default one may not. The context is flags.Name, else PGACTL_CONTEXT,
// else the file's current_context, else the file's only context. A password and its password file
// are one setting: the highest source naming either wins, then the file is read. Relative paths in
// the contexts file are relative to it. The result has an API URL or ResolveContext fails.
func ResolveContext(flags Context, configPath string, getenv func(string) string) (Context, error) {
	explicit := configPath != ""
	if !explicit {
		if configPath = getenv(EnvConfig); configPath != "" {
			explicit = true
		} else {
			configPath = DefaultConfigPath(getenv)
		}
	}
	file, name, err := loadFileContext(flags.Name, configPath, explicit, getenv)
	if err != nil {
		return Context{}, err
	}
	env := Context{
		APIURL:             getenv(EnvAPIURL),
		CAFile:             getenv(EnvCAFile),
		Username:           getenv(EnvUsername),
		Password:           getenv(EnvPassword),
		PasswordFile:       getenv(EnvPasswordFile),
		ViewerUsername:     getenv(EnvViewerUsername),
		ViewerPassword:     getenv(EnvViewerPassword),
		ViewerPasswordFile: getenv(EnvViewerPasswordFile),
		DatabaseURL:        getenv(EnvDatabaseURL),
		Token:              getenv(EnvToken),
	}
	sources := []Context{flags, env, file}
	pick := func(field func(Context) string) string {
		for _, s := range sources {
			if v := field(s); v != "" {
				return v
			}
		}
		return ""
	}
	out := Context{
		Name:               name,
		APIURL:             pick(func(c Context) string { return c.APIURL }),
		CAFile:             pick(func(c Context) string { return c.CAFile }),
		Username:           pick(func(c Context) string { return c.Username }),
		ViewerUsername:     pick(func(c Context) string { return c.ViewerUsername }),
		DatabaseURL:        pick(func(c Context) string { return c.DatabaseURL }),
		Token:              pick(func(c Context) string { return c.Token }),
		InsecureSkipVerify: flags.InsecureSkipVerify || file.InsecureSkipVerify,
	}
	for _, s := range sources {
		if s.Password != "" || s.PasswordFile != "" {
			out.Password, out.PasswordFile = s.Password, s.PasswordFile
			break
		}
	}
	for _, s := range sources {
		if s.ViewerPassword != "" || s.ViewerPasswordFile != "" {
			out.ViewerPassword, out.ViewerPasswordFile = s.ViewerPassword, s.ViewerPasswordFile
			break
		}
	}
	if out.Password == "" && out.PasswordFile != "" {
		if out.Password, err = readPasswordFile(out.PasswordFile); err != nil {
			return Context{}, err
		}
	}
	if out.ViewerPassword == "" && out.ViewerPasswordFile != "" {
		if out.ViewerPassword, err = readPasswordFile(out.ViewerPasswordFile); err != nil {
			return Context{}, err
		}
	}
	if out.APIURL == "" {
		where := "a contexts file"
		if configPath != "" {
			where = configPath
		}
		return Context{}, fmt.Errorf("%w: pass --api-url, set %s, or add api_url to a context in %s", ErrNoAPIURL, EnvAPIURL, where)
	}
	if _, err := normalizeBaseURL(out.APIURL); err != nil {
		return Context{}, err
	}
	return out, nil
}

// loadFileContext reads the contexts file and returns the selected context with its relative paths
// made absolute, plus the context's name ("" when none applies).
func loadFileContext(flagName, path string, explicit bool, getenv func(string) string) (Context, string, error) {
	name := flagName
	if name == "" {
		name = getenv(EnvContext)
	}
	if path == "" {
		if name != "" {
			return Context{}, "", fmt.Errorf("context %q requested but no contexts file (set --config or %s)", name, EnvConfig)
		}
		return Context{}, "", nil
	}
	data, info, err := readLimited(path, maxConfigBytes)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			if name != "" {
				return Context{}, "", fmt.Errorf("context %q requested but %s does not exist", name, path)
			}
			return Context{}, "", nil
		}
		return Context{}, "", fmt.Errorf("contexts file: %w", err)
	}
	cf, err := parseContextsFile(path, data)
	if err != nil {
		return Context{}, "", fmt.Errorf("contexts file: %w", err)
	}
	if name == "" {
		name = cf.CurrentContext
	}
	if name == "" && len(cf.Contexts) == 1 {
		for only := range cf.Contexts {
			name = only
		}
	}
	if name == "" {
		return Context{}, "", nil
	}
	fc, ok := cf.Contexts[name]
	if !ok {
		names := make([]string, 0, len(cf.Contexts))
		for n := range cf.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
		return Context{}, "", fmt.Errorf("context %q is not in %s (defined: %s)", name, path, strings.Join(names, ", "))
	}
	if fc.holdsSecrets() && info.Mode().Perm()&0o077 != 0 {
		return Context{}, "", fmt.Errorf("contexts file %s holds secrets but is readable by others (mode %04o): chmod 600 %s", path, info.Mode().Perm(), path)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	return Context{
		Name:               name,
		APIURL:             fc.APIURL,
		CAFile:             rel(fc.CAFile),
		Username:           fc.Username,
		Password:           fc.Password,
		PasswordFile:       rel(fc.PasswordFile),
		ViewerUsername:     fc.ViewerUsername,
		ViewerPassword:     fc.ViewerPassword,
		ViewerPasswordFile: rel(fc.ViewerPasswordFile),
		DatabaseURL:        fc.DatabaseURL,
		Token:              fc.Token,
		InsecureSkipVerify: fc.InsecureSkipVerify,
	}, name, nil
}

// readPasswordFile reads a password, dropping one trailing newline (echo adds it).
func readPasswordFile(path string) (string, error) {
	data, _, err := readLimited(path, maxPasswordBytes)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}

func readLimited(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, info, nil
}
