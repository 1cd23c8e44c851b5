package runbook

import (
	"sort"
	"strings"
)

// Redacted replaces every secret value in output, errors, the audit log and the state.
const Redacted = "[REDACTED]"

// redactor hides a fixed set of secret values. The zero value hides nothing.
type redactor struct {
	r *strings.Replacer
}

func newRedactor(secrets []string) redactor {
	// A multi-line secret (a PEM key from a file) may be printed one line at a time: hide each line too.
	seen := map[string]bool{}
	var all []string
	for _, s := range secrets {
		for _, part := range append([]string{s}, strings.Split(s, "\n")...) {
			part = strings.TrimRight(part, "\r")
			if strings.TrimSpace(part) == "" || seen[part] {
				continue
			}
			seen[part] = true
			all = append(all, part)
		}
	}
	if len(all) == 0 {
		return redactor{}
	}
	// Longest first, so a secret containing another is hidden whole.
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Redacted)
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

func (r redactor) redact(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}
