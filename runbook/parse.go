package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// MaxRunbookBytes caps a runbook file; the shipped one is a few tens of KiB.
const MaxRunbookBytes = 4 << 20

// idRe is what phase and step IDs look like: short, lowercase, usable on a command line.
var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ParseError is a problem at a place in a file. Line and Column are 1-based; zero when unknown.
type ParseError = tomlfile.Error

// ParseFile reads and parses a runbook file.
func ParseFile(path string) (*Runbook, error) {
	data, err := readCapped(path, MaxRunbookBytes)
	if err != nil {
		return nil, fmt.Errorf("read runbook: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a runbook. Every problem is reported with its line: syntax errors,
// unknown keys, bad values, and rule violations (missing or misplaced fields, duplicate IDs).
func Parse(source string, data []byte) (*Runbook, error) {
	if len(data) > MaxRunbookBytes {
		return nil, &ParseError{File: source, Msg: fmt.Sprintf("runbook larger than %d bytes", MaxRunbookBytes)}
	}
	var rb Runbook
	if err := decodeStrict(source, data, &rb); err != nil {
		return nil, err
	}
	rb.Source = source
	if errs := validateRunbook(&rb); len(errs) > 0 {
		return nil, locate(source, data, errs)
	}
	return &rb, nil
}

// decodeStrict decodes TOML refusing unknown keys; every fault is a ParseError.
func decodeStrict(source string, data []byte, v any) error {
	return tomlfile.Decode(source, data, v)
}

// fieldError is a rule violation found after decoding, located later by its TOML key path.
type fieldError struct {
	path string // e.g. "phase.1.step.3.run": array-table indexes count from 0
	msg  string
}

func validateRunbook(rb *Runbook) []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path: path, msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(rb.Title) == "" {
		add("title", "runbook has no title")
	}
	if len(rb.Phases) == 0 {
		add("", "runbook has no [[phase]]")
	}
	phaseSeen := map[string]bool{}
	for pi := range rb.Phases {
		p := &rb.Phases[pi]
		pp := fmt.Sprintf("phase.%d", pi)
		where := fmt.Sprintf("phase %q", p.ID)
		switch {
		case !idRe.MatchString(p.ID):
			add(pp+".id", "phase %d: id %q must be lowercase letters, digits and dashes", pi+1, p.ID)
		case phaseSeen[p.ID]:
			add(pp+".id", "duplicate phase id %q", p.ID)
		}
		phaseSeen[p.ID] = true
		if strings.TrimSpace(p.Title) == "" {
			add(pp, "%s has no title", where)
		}
		if len(p.Steps) == 0 {
			add(pp, "%s has no [[phase.step]]", where)
		}
		stepSeen := map[string]bool{}
		for si := range p.Steps {
			s := &p.Steps[si]
			sp := fmt.Sprintf("%s.step.%d", pp, si)
			switch {
			case !idRe.MatchString(s.ID):
				add(sp+".id", "%s step %d: id %q must be lowercase letters, digits and dashes", where, si+1, s.ID)
			case stepSeen[s.ID]:
				add(sp+".id", "%s: duplicate step id %q", where, s.ID)
			}
			stepSeen[s.ID] = true
			for _, v := range validateStep(s) {
				add(sp+v.path, "%s step %q: %s", where, s.ID, v.msg)
			}
		}
	}
	return errs
}

// stepFields lists which optional fields a step sets, by TOML key.
func stepFields(s *Step) map[string]bool {
	return map[string]bool{
		"checklist": len(s.Checklist) > 0, "approve": len(s.Approve) > 0, "destructive": s.Destructive, "timeout": s.Timeout.D() != 0,
		"retries": s.Retries != 0, "retry_delay": s.RetryDelay.D() != 0, "run": s.Run != "", "sql": s.SQL != "",
		"params": len(s.Params) > 0, "database": s.Database != "", "expect": s.Expect != nil,
		"check": s.Check != "", "url": s.URL != "", "headers": len(s.Headers) > 0, "min_days": s.MinDays != 0,
		"role": s.Role != "", "secret": s.Secret != "", "name": s.Name != "", "hostname": s.Hostname != "",
		"username": s.Username != "", "password": s.Password != "",
		"servers": s.Servers != "", "settle": s.Settle.D() != 0, "window": s.Window.D() != 0, "token": s.Token != "",
	}
}

// allowed and required fields per kind (and per check for KindCheck), beyond id/title/kind/description.
var (
	commonFields = []string{"checklist", "approve"}
	execFields   = []string{"timeout", "retries", "retry_delay"}
	kindFields   = map[Kind][]string{
		KindManual:  nil,
		KindCommand: {"run", "destructive"},
		KindSQL:     {"sql", "params", "database", "expect", "destructive"},
		KindCheck:   {"check"},
		KindRolling: {"run", "servers", "settle", "destructive"},
	}
	kindRequired = map[Kind][]string{KindCommand: {"run"}, KindSQL: {"sql"}, KindCheck: {"check"},
		KindRolling: {"run", "servers"}}
	checkFields = map[Check][]string{
		CheckHTTPHealth:      {"url"},
		CheckSecurityHeaders: {"url", "headers"},
		CheckTLSExpiry:       {"url", "min_days"},
		CheckPostgres:        {"database"},
		CheckPgMonitor:       {"database", "role"},
		CheckRegistration:    {"url", "secret", "name", "hostname", "username", "password"},
		CheckAPIMetrics:      {"url", "username", "password"},
		CheckSmoke:           nil,
		CheckAlertsEvaluated: {"url", "username", "password"},
		CheckAlertDelivery:   {"url", "username", "password"},
		CheckAPIServers:      {"servers", "url"},
		CheckPerformance:     {"url", "servers", "database", "window", "token"},
		CheckSecurity:        {"url", "username", "password"},
		CheckGrafana:         {"database", "role"},
		CheckRollbackTrigger: {"url", "servers", "database"},
		CheckAlertmanager:    {"url"},
	}
	checkRequired = map[Check][]string{
		CheckHTTPHealth: {"url"}, CheckSecurityHeaders: {"url"}, CheckTLSExpiry: {"url"},
		CheckRegistration: {"url", "secret", "name", "hostname"}, CheckAPIMetrics: {"url", "username", "password"},
		CheckAlertsEvaluated: {"url", "username", "password"}, CheckAlertDelivery: {"url", "username", "password"},
		CheckAPIServers: {"servers"}, CheckPerformance: {"url"}, CheckSecurity: {"url", "username", "password"},
		CheckRollbackTrigger: {"url"}, CheckAlertmanager: {"url"},
	}
)

func validateStep(s *Step) []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path: path, msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(s.Title) == "" {
		add("", "no title")
	}
	switch {
	case s.Kind == "":
		add("", "no kind (want one of %s)", joinQuoted(kinds))
		return errs
	case !slices.Contains(kinds, s.Kind):
		add(".kind", "unknown step kind %q (want one of %s)", s.Kind, joinQuoted(kinds))
		return errs
	case s.Check != "" && !slices.Contains(checks, s.Check):
		add(".check", "unknown check %q (want one of %s)", s.Check, joinQuoted(checks))
		return errs
	}
	for j, role := range s.Approve {
		if !api.IsTeamRole(role) {
			add(fmt.Sprintf(".approve[%d]", j), "unknown team role %q (want one of %s)", role, joinQuoted(api.TeamRoles))
		}
	}
	allowed := map[string]bool{}
	for _, f := range commonFields {
		allowed[f] = true
	}
	if s.Kind != KindManual {
		for _, f := range execFields {
			allowed[f] = true
		}
	}
	for _, f := range kindFields[s.Kind] {
		allowed[f] = true
	}
	required := kindRequired[s.Kind]
	if s.Kind == KindCheck && s.Check != "" {
		for _, f := range checkFields[s.Check] {
			allowed[f] = true
		}
		required = append(required, checkRequired[s.Check]...)
	}
	set := stepFields(s)
	names := make([]string, 0, len(set))
	for f := range set {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if set[f] && !allowed[f] {
			what := "a " + string(s.Kind) + " step"
			if s.Kind == KindCheck {
				what = "check " + strconv.Quote(string(s.Check))
			}
			add("."+f, "%q does not apply to %s", f, what)
		}
	}
	for _, f := range required {
		if !set[f] {
			add("", "missing %q", f)
		}
	}
	if s.Retries < 0 || s.Retries > 100 {
		add(".retries", "retries %d out of range [0, 100]", s.Retries)
	}
	if s.RetryDelay.D() != 0 && s.Retries == 0 {
		add(".retry_delay", "retry_delay without retries")
	}
	if s.MinDays < 0 || s.MinDays > 3650 {
		add(".min_days", "min_days %d out of range [1, 3650]", s.MinDays)
	}
	if s.Expect != nil && s.Expect.Rows == nil && s.Expect.Value == nil && s.Expect.Equals == nil {
		add(".expect", "expect sets none of rows, value, equals")
	}
	for _, h := range s.Headers {
		name, _, _ := strings.Cut(h, ":")
		if !httpTokenRe.MatchString(strings.TrimSpace(name)) {
			add(".headers", "header %q: write \"Name\" or \"Name: value\"", h)
		}
	}
	// Secrets come by reference from the environment, so the runbook (and its audit trail) never holds one.
	for key, v := range map[string]string{"secret": s.Secret, "password": s.Password, "token": s.Token} {
		if v != "" && !singleRefRe.MatchString(v) {
			add("."+key, "%s must be a single ${NAME} reference to an environment variable, not a literal", key)
		}
	}
	for key, v := range map[string]string{"url": s.URL, "database": s.Database, "role": s.Role, "name": s.Name,
		"hostname": s.Hostname, "username": s.Username, "servers": s.Servers} {
		if err := checkStepRefs(v); err != nil {
			add("."+key, "%s: %v", key, err)
		}
	}
	for _, v := range s.Params {
		if err := checkStepRefs(v); err != nil {
			add(".params", "params: %v", err)
		}
	}
	return errs
}

var (
	httpTokenRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	singleRefRe = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)
)

// checkStepRefs accepts text whose references all name environment variables (${NAME}).
func checkStepRefs(s string) error {
	_, err := expand(s, func(ref string) (string, error) {
		if !varNameRe.MatchString(ref) {
			return "", fmt.Errorf("reference ${%s}: steps may only reference environment variables (${NAME})", ref)
		}
		return "", nil
	})
	return err
}

// locate turns rule violations into ParseErrors carrying the line of the key (or of its table).
func locate(source string, data []byte, errs []fieldError) error {
	lines := keyLines(data)
	out := make([]*ParseError, 0, len(errs))
	for _, fe := range errs {
		pe := &ParseError{File: source, Msg: fe.msg}
		for path := fe.path; ; {
			if l, ok := lines[path]; ok {
				pe.Line = l
				break
			}
			i := strings.LastIndexByte(path, '.')
			if i < 0 {
				break
			}
			path = path[:i]
		}
		out = append(out, pe)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	joined := make([]error, len(out))
	for i, e := range out {
		joined[i] = e
	}
	return errors.Join(joined...)
}

// keyLines maps each key path of a (valid) TOML document to its line. Array tables are numbered in
// order of appearance, so "phase.1.step.0.run" is the run key of the first step of the second phase.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	counts := map[string]int{} // array-table path (with parent indexes) -> entries seen
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			parts := keyParts(e.Key())
			// Rebuild the path, substituting each array-table's current index (the last for parents).
			path := ""
			for i, part := range parts {
				path = joinPath(path, part)
				last := i == len(parts)-1
				if last && e.Kind == unstable.ArrayTable {
					n := counts[path]
					counts[path] = n + 1
					path = joinPath(path, strconv.Itoa(n))
				} else if n, ok := counts[path]; ok {
					path = joinPath(path, strconv.Itoa(n-1))
				}
			}
			prefix = path
			lines[path] = lineOf(data, e.Child())
		case unstable.KeyValue:
			key := prefix
			for _, part := range keyParts(e.Key()) {
				key = joinPath(key, part)
			}
			lines[key] = lineOf(data, e.Value())
		}
	}
	return lines
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func lineOf(data []byte, n *unstable.Node) int {
	if n == nil {
		return 0
	}
	off := int(n.Raw.Offset)
	if n.Raw.Length == 0 && len(n.Data) > 0 {
		// Some nodes only carry Data (a subslice of the document); find its offset by capacity.
		off = cap(data) - cap(n.Data)
	}
	if off < 0 || off > len(data) {
		return 0
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// readCapped reads a file refusing anything larger than limit.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
