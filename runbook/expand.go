package runbook

import (
	"errors"
	"regexp"
	"strings"
)

var varNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxExpandedBytes bounds the result of an expansion, so self-amplifying references cannot exhaust memory.
const maxExpandedBytes = 1 << 20

// expand replaces each ${REF} in s with lookup(REF). "$$" stands for a literal "$"; any other "$" is
// kept as is. An unterminated "${" is an error, never silently kept.
func expand(s string, lookup func(ref string) (string, error)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var errs []error
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", errors.New("unterminated ${ reference")
			}
			ref := s[i+2 : i+2+end]
			v, err := lookup(ref)
			if err != nil {
				errs = append(errs, err)
			}
			b.WriteString(v)
			s = s[i+2+end+1:]
		default:
			b.WriteByte('$')
			s = s[i+1:]
		}
		if b.Len() > maxExpandedBytes {
			return "", errors.New("expanded value too large")
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return b.String(), nil
}
