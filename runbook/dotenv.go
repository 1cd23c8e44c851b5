package runbook

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxDotenvBytes caps a KEY=VALUE file.
const MaxDotenvBytes = 1 << 20

// ParseDotenv reads KEY=VALUE lines (the format `pgactl demo` writes and docker --env-file reads):
// blank lines and lines starting with # are ignored; KEY is a shell identifier; VALUE is the rest of
// the line taken verbatim (no quotes, no escapes, no expansion). Duplicate keys are errors.
func ParseDotenv(source string, data []byte) (map[string]string, error) {
	if len(data) > MaxDotenvBytes {
		return nil, &ParseError{File: source, Msg: fmt.Sprintf("larger than %d bytes", MaxDotenvBytes)}
	}
	vars := map[string]string{}
	firstLine := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if !utf8.ValidString(line) || strings.ContainsAny(line, "\x00\r") {
			return nil, &ParseError{File: source, Line: n, Msg: "invalid characters (want UTF-8 text without NUL or CR)"}
		}
		key, value, ok := strings.Cut(trimmed, "=")
		if !ok {
			return nil, &ParseError{File: source, Line: n, Msg: "want KEY=VALUE"}
		}
		if !varNameRe.MatchString(key) {
			return nil, &ParseError{File: source, Line: n,
				Msg: fmt.Sprintf("invalid key %q (letters, digits and _, not starting with a digit; no spaces around =)", key)}
		}
		if prev, dup := firstLine[key]; dup {
			return nil, &ParseError{File: source, Line: n, Msg: fmt.Sprintf("duplicate key %s (first on line %d)", key, prev)}
		}
		firstLine[key] = n
		vars[key] = value
	}
	return vars, nil
}
