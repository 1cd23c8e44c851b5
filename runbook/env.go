package runbook

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// MaxEnvironmentBytes caps an environment file; MaxSecretFileBytes caps a ${file:...} secret.
const (
	MaxEnvironmentBytes = 1 << 20
	MaxSecretFileBytes  = 64 << 10
)

// Variables the engine defines itself; an environment file cannot redefine them.
const (
	VarStateDir = "PGACTL_STATE_DIR" // the state directory (also usable in import paths)
	VarEnv      = "PGACTL_ENV"       // the environment's name
	VarRunID    = "PGACTL_RUN_ID"    // the run's ID (commands only)
	VarRunDir   = "PGACTL_RUN_DIR"   // the run's directory under the state dir (commands only)
)

var (
	builtinVars   = map[string]bool{VarStateDir: true, VarEnv: true, VarRunID: true, VarRunDir: true}
	commandNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	// secretNameRe marks variables whose values are secrets by their name.
	secretNameRe = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY($|_))`)
)

// envFile is the TOML layout of an environment file.
type envFile struct {
	Description  string            `toml:"description"`
	LoopbackOnly bool              `toml:"loopback_only"`
	CAFile       string            `toml:"ca_file"`
	Import       []string          `toml:"import"`
	Secrets      []string          `toml:"secrets"`
	Vars         map[string]string `toml:"vars"`
	Commands     map[string]string `toml:"commands"`
}

// Environment is a resolved environment file: the variables one runbook run sees, and the shell
// functions its command steps may call. Secret values never leave it except into the processes and
// connections that need them.
type Environment struct {
	Name         string // shipped name ("demo") or file path
	Description  string
	LoopbackOnly bool              // built-in checks and SQL may only reach loopback addresses
	CAFile       string            // extra CA bundle for HTTPS checks, or ""
	Commands     map[string]string // shell functions, name -> body

	vars     map[string]string // resolved values
	problems map[string]error  // variables that could not be resolved, and why
	secret   map[string]bool   // variables whose values are secrets
	redactor redactor
}

// IsFileRef reports whether an --env argument names a file rather than a shipped environment.
func IsFileRef(nameOrPath string) bool {
	return strings.ContainsRune(nameOrPath, os.PathSeparator) || strings.HasSuffix(nameOrPath, ".toml")
}

// LoadEnvironment loads a shipped environment by name ("demo", "staging", "production") or an
// environment file by path, and resolves it. stateDir is the value of ${PGACTL_STATE_DIR}.
func LoadEnvironment(nameOrPath, stateDir string) (*Environment, error) {
	if IsFileRef(nameOrPath) {
		data, err := readCapped(nameOrPath, MaxEnvironmentBytes)
		if err != nil {
			return nil, fmt.Errorf("read environment: %w", err)
		}
		return ParseEnvironment(nameOrPath, data, stateDir)
	}
	data, ok := EnvironmentTOML(nameOrPath)
	if !ok {
		return nil, fmt.Errorf("no shipped environment %q (shipped: %s; or give a file path)",
			nameOrPath, strings.Join(EnvironmentNames(), ", "))
	}
	return ParseEnvironment(nameOrPath, data, stateDir)
}

// ParseEnvironment decodes and resolves an environment file. Errors in the file itself (syntax,
// unknown keys, bad names, failed imports, loopback violations) are fatal; a variable whose
// ${env:...} or ${file:...} reference cannot be resolved is only recorded, and fails the steps that use it.
func ParseEnvironment(source string, data []byte, stateDir string) (*Environment, error) {
	if len(data) > MaxEnvironmentBytes {
		return nil, &ParseError{File: source, Msg: fmt.Sprintf("environment larger than %d bytes", MaxEnvironmentBytes)}
	}
	var f envFile
	if err := decodeStrict(source, data, &f); err != nil {
		return nil, err
	}
	name := source
	baseDir := ""
	if IsFileRef(source) {
		baseDir = filepath.Dir(source)
	}
	var errs []fieldError
	for k := range f.Vars {
		switch {
		case !varNameRe.MatchString(k):
			errs = append(errs, fieldError{path: "vars." + k, msg: fmt.Sprintf("variable name %q: letters, digits and _, not starting with a digit", k)})
		case builtinVars[k]:
			errs = append(errs, fieldError{path: "vars." + k, msg: fmt.Sprintf("variable %s is defined by pgactl itself", k)})
		}
	}
	for k, body := range f.Commands {
		switch {
		case !commandNameRe.MatchString(k):
			errs = append(errs, fieldError{path: "commands." + k, msg: fmt.Sprintf("command name %q: lowercase letters, digits and _", k)})
		case strings.TrimSpace(body) == "":
			errs = append(errs, fieldError{path: "commands." + k, msg: fmt.Sprintf("command %s is empty", k)})
		}
	}
	for i, s := range f.Secrets {
		if !varNameRe.MatchString(s) {
			errs = append(errs, fieldError{path: "secrets", msg: fmt.Sprintf("secrets[%d]: %q is not a variable name", i, s)})
		}
	}
	if len(errs) > 0 {
		return nil, locate(source, data, errs)
	}

	r := &resolver{
		raw:      f.Vars,
		builtins: map[string]string{VarStateDir: stateDir, VarEnv: name},
		imported: map[string]string{},
		baseDir:  baseDir,
		values:   map[string]string{},
		problems: map[string]error{},
		state:    map[string]int{},
	}
	for _, imp := range f.Import {
		path, err := expand(imp, r.importLookup)
		if err != nil {
			return nil, fmt.Errorf("environment %s: import %q: %w", name, imp, err)
		}
		path = r.abs(path)
		content, err := readCapped(path, MaxDotenvBytes)
		if err != nil {
			return nil, fmt.Errorf("environment %s: import: %w", name, err)
		}
		kv, err := ParseDotenv(path, content)
		if err != nil {
			return nil, fmt.Errorf("environment %s: import: %w", name, err)
		}
		for k, v := range kv {
			if builtinVars[k] {
				return nil, fmt.Errorf("environment %s: import %s: variable %s is defined by pgactl itself", name, path, k)
			}
			r.imported[k] = v
		}
	}
	for k := range f.Vars {
		r.resolve(k)
	}
	for k, v := range r.imported {
		if _, overridden := f.Vars[k]; !overridden {
			r.values[k] = v
		}
	}
	for k, v := range r.builtins {
		r.values[k] = v
	}

	env := &Environment{
		Name:         name,
		Description:  strings.TrimSpace(f.Description),
		LoopbackOnly: f.LoopbackOnly,
		Commands:     f.Commands,
		vars:         r.values,
		problems:     r.problems,
		secret:       map[string]bool{},
	}
	caFile, err := expand(f.CAFile, r.lookup) // e.g. "${PGACTL_CA_FILE}" from an import; "" is none
	if err != nil {
		return nil, fmt.Errorf("environment %s: ca_file: %w", name, err)
	}
	if caFile != "" {
		env.CAFile = r.abs(caFile)
		if _, err := os.Stat(env.CAFile); err != nil {
			return nil, fmt.Errorf("environment %s: ca_file: %w", name, err)
		}
	}
	for k := range env.vars {
		env.secret[k] = secretNameRe.MatchString(k)
	}
	for _, s := range f.Secrets {
		env.secret[s] = true
	}
	secrets := append([]string(nil), r.secretParts...)
	for k, v := range env.vars {
		if env.secret[k] {
			secrets = append(secrets, v)
		}
		if pw := urlPassword(v); pw != "" {
			secrets = append(secrets, pw)
		}
	}
	env.redactor = newRedactor(secrets)

	if env.LoopbackOnly {
		var lerrs []error
		for _, k := range env.VarNames() {
			if v, ok := env.vars[k]; ok {
				if err := checkLoopbackVar(k, v); err != nil {
					lerrs = append(lerrs, err)
				}
			}
		}
		if len(lerrs) > 0 {
			return nil, fmt.Errorf("environment %s is loopback-only: %w", name, errors.Join(lerrs...))
		}
	}
	return env, nil
}

// resolver expands [vars] values, each at most once, detecting reference cycles.
type resolver struct {
	raw         map[string]string
	builtins    map[string]string
	imported    map[string]string
	baseDir     string
	values      map[string]string
	problems    map[string]error
	state       map[string]int // 1 resolving, 2 done
	secretParts []string       // values read from secret-looking ${env:...} and from every ${file:...}
}

func (r *resolver) resolve(name string) (string, error) {
	switch r.state[name] {
	case 1:
		return "", fmt.Errorf("${%s}: reference cycle", name)
	case 2:
		if err, bad := r.problems[name]; bad {
			return "", err
		}
		return r.values[name], nil
	}
	r.state[name] = 1
	v, err := expand(r.raw[name], r.lookup)
	r.state[name] = 2
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
		r.problems[name] = err
		return "", err
	}
	r.values[name] = v
	return v, nil
}

func (r *resolver) lookup(ref string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		key := strings.TrimPrefix(ref, "env:")
		if !varNameRe.MatchString(key) {
			return "", fmt.Errorf("${%s}: invalid environment variable name", ref)
		}
		v, ok := os.LookupEnv(key)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", key)
		}
		if secretNameRe.MatchString(key) {
			r.secretParts = append(r.secretParts, v)
		}
		return v, nil
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		if path == "" {
			return "", fmt.Errorf("${%s}: empty path", ref)
		}
		b, err := readCapped(r.abs(path), MaxSecretFileBytes)
		if err != nil {
			return "", fmt.Errorf("${file:...}: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		r.secretParts = append(r.secretParts, v)
		return v, nil
	case !varNameRe.MatchString(ref):
		return "", fmt.Errorf("${%s}: unknown reference (want ${NAME}, ${env:NAME} or ${file:PATH})", ref)
	}
	if v, ok := r.builtins[ref]; ok {
		return v, nil
	}
	if _, ok := r.raw[ref]; ok {
		return r.resolve(ref)
	}
	if v, ok := r.imported[ref]; ok {
		return v, nil
	}
	return "", fmt.Errorf("${%s}: not defined", ref)
}

// importLookup resolves the references an import path may use: built-ins and ${env:...}.
func (r *resolver) importLookup(ref string) (string, error) {
	if v, ok := r.builtins[ref]; ok {
		return v, nil
	}
	if strings.HasPrefix(ref, "env:") {
		return r.lookup(ref)
	}
	return "", fmt.Errorf("${%s}: import paths may use %s, %s or ${env:NAME}", ref, VarStateDir, VarEnv)
}

func (r *resolver) abs(path string) string {
	if filepath.IsAbs(path) || r.baseDir == "" {
		return path
	}
	return filepath.Join(r.baseDir, path)
}

// Lookup returns a variable's value, or why it has none.
func (e *Environment) Lookup(name string) (string, error) {
	if v, ok := e.vars[name]; ok {
		return v, nil
	}
	if err, ok := e.problems[name]; ok {
		return "", fmt.Errorf("environment %s: %w", e.Name, err)
	}
	return "", fmt.Errorf("environment %s does not define %s", e.Name, name)
}

// VarNames lists every variable the file defines or imports, resolved or not, sorted.
func (e *Environment) VarNames() []string {
	names := make([]string, 0, len(e.vars)+len(e.problems))
	for k := range e.vars {
		names = append(names, k)
	}
	for k := range e.problems {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// IsSecret reports whether a variable's value is treated as a secret (never shown).
func (e *Environment) IsSecret(name string) bool { return e.secret[name] }

// Redact hides every secret value of the environment in s.
func (e *Environment) Redact(s string) string { return e.redactor.redact(s) }

// expandStep resolves a step field's ${NAME} references against the environment.
func (e *Environment) expandStep(s string) (string, error) {
	return expand(s, func(ref string) (string, error) {
		if !varNameRe.MatchString(ref) {
			return "", fmt.Errorf("${%s}: steps may only reference environment variables", ref)
		}
		return e.Lookup(ref)
	})
}

// shellEnv is the process environment of a command step: ours, plus every resolved variable.
func (e *Environment) shellEnv(extra map[string]string) []string {
	env := os.Environ()
	for k, v := range e.vars {
		env = append(env, k+"="+v)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// urlPassword returns the password of a URL-shaped value (postgres://u:pw@h/db), or "".
func urlPassword(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// checkLoopbackVar refuses a URL, connection string or *_HOST value that points off this machine.
func checkLoopbackVar(name, value string) error {
	switch {
	case looksLikeHTTPURL(value):
		// A list of URLs (ALERTMANAGER_URLS): each must be loopback.
		for _, u := range splitList(value) {
			if err := checkLoopbackURL(u); err != nil {
				return err
			}
		}
		return nil
	case looksLikeDSN(value):
		return checkLoopbackDSN(value)
	case strings.HasSuffix(strings.ToUpper(name), "HOST"):
		if !isLoopbackHost(value) && !strings.HasPrefix(value, "/") {
			return fmt.Errorf("%s: host %q is not a loopback address", name, value)
		}
	}
	return nil
}

func looksLikeHTTPURL(v string) bool {
	l := strings.ToLower(v)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

func looksLikeDSN(v string) bool {
	l := strings.ToLower(v)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") ||
		strings.Contains(l, "host=") || strings.Contains(l, "hostaddr=")
}

func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL %q cannot be parsed", redactURL(raw))
	}
	if !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("URL %s: host %q is not a loopback address", redactURL(raw), u.Hostname())
	}
	return nil
}

func checkLoopbackDSN(dsn string) error {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("connection string cannot be parsed, so its host cannot be checked")
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if !isLoopbackHost(h) && !strings.HasPrefix(h, "/") {
			return fmt.Errorf("database host %q is not a loopback address", h)
		}
	}
	return nil
}

// isLoopbackHost accepts "localhost" and loopback IP literals; no DNS is consulted.
func isLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a URL's password for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
