package runbook

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/tomlfile"
)

// Runbook is a parsed, validated runbook: phases run in order, each a list of steps.
type Runbook struct {
	Title       string  `toml:"title" json:"title"`
	Version     string  `toml:"version" json:"version,omitempty"`
	Description string  `toml:"description" json:"description,omitempty"`
	Phases      []Phase `toml:"phase" json:"phases"`

	// Source names where the runbook came from: DefaultSource for the shipped one, else a file path.
	Source string `toml:"-" json:"source"`
}

// Phase is a named group of steps, addressed by its ID (e.g. "staging").
type Phase struct {
	ID          string `toml:"id" json:"id"`
	Title       string `toml:"title" json:"title"`
	Description string `toml:"description" json:"description,omitempty"`
	Steps       []Step `toml:"step" json:"steps"`
}

// Step is one action of a phase. Which fields apply depends on Kind (and, for checks, on Check);
// Parse rejects fields that do not apply, so a typo never passes silently.
type Step struct {
	ID          string   `toml:"id" json:"id"`
	Title       string   `toml:"title" json:"title"`
	Kind        Kind     `toml:"kind" json:"kind"`
	Description string   `toml:"description" json:"description,omitempty"`
	Checklist   []string `toml:"checklist" json:"checklist,omitempty"`
	Destructive bool     `toml:"destructive" json:"destructive,omitempty"`
	// Approve names the team roles (deployment-lead, database-lead, …) that must approve the step
	// before it runs, in a shared run; a destructive step also needs an approver other than its
	// executor (two people).
	Approve    []string `toml:"approve" json:"approve,omitempty"`
	Timeout    Duration `toml:"timeout" json:"timeout,omitzero"`
	Retries    int      `toml:"retries" json:"retries,omitempty"`
	RetryDelay Duration `toml:"retry_delay" json:"retry_delay,omitzero"`

	// command (and rolling: run once per server)
	Run string `toml:"run" json:"run,omitempty"`

	// rolling, and the api-servers check: NAME=URL entries, comma or space separated (ParseServers)
	Servers string   `toml:"servers" json:"servers,omitempty"`
	Settle  Duration `toml:"settle" json:"settle,omitzero"` // rolling: wait after a server is ready (default 5s)

	// performance: how long to watch (default 30s), and the /metrics bearer token (a ${NAME})
	Window Duration `toml:"window" json:"window,omitzero"`
	Token  string   `toml:"token" json:"token,omitempty"`

	// sql (Database also for the postgres and pg-monitor checks)
	SQL      string   `toml:"sql" json:"sql,omitempty"`
	Params   []string `toml:"params" json:"params,omitempty"`
	Database string   `toml:"database" json:"database,omitempty"`
	Expect   *Expect  `toml:"expect" json:"expect,omitempty"`

	// check
	Check    Check    `toml:"check" json:"check,omitempty"`
	URL      string   `toml:"url" json:"url,omitempty"`
	Headers  []string `toml:"headers" json:"headers,omitempty"`
	MinDays  int      `toml:"min_days" json:"min_days,omitempty"`
	Role     string   `toml:"role" json:"role,omitempty"`
	Secret   string   `toml:"secret" json:"secret,omitempty"`
	Name     string   `toml:"name" json:"name,omitempty"`
	Hostname string   `toml:"hostname" json:"hostname,omitempty"`
	Username string   `toml:"username" json:"username,omitempty"`
	Password string   `toml:"password" json:"password,omitempty"`
}

// Kind is what a step does.
type Kind string

// Step kinds.
const (
	KindManual  Kind = "manual"  // an operator does it and confirms
	KindCheck   Kind = "check"   // a built-in check (see Check)
	KindCommand Kind = "command" // a bash script with a timeout
	KindSQL     Kind = "sql"     // SQL against a database URL, optionally with an expectation
	KindRolling Kind = "rolling" // a command per server, one server at a time, each back ready before the next
)

var kinds = []Kind{KindManual, KindCheck, KindCommand, KindSQL, KindRolling}

// Check names a built-in check.
type Check string

// Built-in checks.
const (
	CheckHTTPHealth      Check = "http-health"       // GET {url}/api/v1/health: 200 and {"status":"healthy"}
	CheckSecurityHeaders Check = "security-headers"  // GET {url}/api/v1/health carries the security headers
	CheckTLSExpiry       Check = "tls-expiry"        // the certificate served at url is valid for min_days more
	CheckPostgres        Check = "postgres"          // database is reachable
	CheckPgMonitor       Check = "pg-monitor"        // role holds pg_monitor's privileges
	CheckRegistration    Check = "registration"      // POST {url}/api/v1/collectors/register answers 201 with a token
	CheckAPIMetrics      Check = "api-metrics"       // login, then GET {url}/api/v1/metrics returns recent samples
	CheckSmoke           Check = "smoke"             // the whole smoke suite
	CheckAlertsEvaluated Check = "alerts-evaluated"  // login, then GET {url}/api/v1/alerts was evaluated within a minute
	CheckAlertDelivery   Check = "alert-delivery"    // login, then a synthetic alert reaches every Alertmanager
	CheckAPIServers      Check = "api-servers"       // every server of servers is ready and healthy (and url, the load balancer)
	CheckPerformance     Check = "performance"       // the plan's Step 8 targets measured over window
	CheckSecurity        Check = "security"          // the smoke suite's security checks, then every user and role listed
	CheckGrafana         Check = "grafana"           // every dashboard query runs as the Grafana role and returns rows
	CheckRollbackTrigger Check = "rollback-triggers" // the plan's six rollback trigger conditions, none tripped
	CheckAlertmanager    Check = "alertmanager"      // every Alertmanager of url answers ready
)

var checks = []Check{CheckHTTPHealth, CheckSecurityHeaders, CheckTLSExpiry, CheckPostgres, CheckPgMonitor,
	CheckRegistration, CheckAPIMetrics, CheckSmoke, CheckAlertsEvaluated, CheckAlertDelivery, CheckAPIServers, CheckPerformance, CheckSecurity, CheckGrafana, CheckRollbackTrigger, CheckAlertmanager}

// Duration is a time.Duration written as a Go duration string ("30s", "5m", "1h30m"). It is a
// struct, not an integer type, so that a bare integer is refused with its line, not read as
// nanoseconds.
type Duration struct{ d time.Duration }

// Dur wraps d.
func Dur(d time.Duration) Duration { return Duration{d} }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return d.d }

// maxDuration bounds timeouts and delays: a runbook step longer than a day is a mistake.
const maxDuration = 24 * time.Hour

// UnmarshalText parses a duration string; it must be positive and at most 24h.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &tomlfile.BareValueError{Value: string(b),
			Msg: fmt.Sprintf("invalid duration %q (write it as a quoted string such as \"30s\", \"5m\", \"1h30m\")", b)}
	}
	if v <= 0 || v > maxDuration {
		return fmt.Errorf("duration %q out of range (0, 24h]", b)
	}
	d.d = v
	return nil
}

// MarshalText writes the duration back in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.d.String()), nil }

// Expect is what a sql step's result must satisfy; all set fields must hold.
type Expect struct {
	Rows   *Comparison `toml:"rows" json:"rows,omitempty"`     // number of rows, e.g. "> 0"
	Value  *Comparison `toml:"value" json:"value,omitempty"`   // first column of the first row, numeric, e.g. ">= 100"
	Equals [][]string  `toml:"equals" json:"equals,omitempty"` // every row, in PostgreSQL text form (NULL as "NULL")
}

// Comparison is an operator and a number, e.g. "> 0" or ">= 100".
type Comparison struct {
	Op    string
	Limit float64
}

var comparisonRe = regexp.MustCompile(`^\s*(==|!=|>=|<=|>|<)\s*([-+]?[0-9]+(?:\.[0-9]+)?)\s*$`)

// UnmarshalText parses "OP NUMBER" with OP one of == != >= <= > <.
func (c *Comparison) UnmarshalText(b []byte) error {
	m := comparisonRe.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("invalid comparison %q (write an operator and a number, e.g. \"> 0\" or \">= 100\")", b)
	}
	limit, err := strconv.ParseFloat(string(m[2]), 64)
	if err != nil {
		return fmt.Errorf("invalid comparison %q: %w", b, err)
	}
	c.Op, c.Limit = string(m[1]), limit
	return nil
}

// MarshalText writes the comparison back as "OP NUMBER".
func (c Comparison) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c Comparison) String() string {
	return c.Op + " " + strconv.FormatFloat(c.Limit, 'f', -1, 64)
}

// Holds reports whether v satisfies the comparison.
func (c Comparison) Holds(v float64) bool {
	switch c.Op {
	case "==":
		return v == c.Limit
	case "!=":
		return v != c.Limit
	case ">=":
		return v >= c.Limit
	case "<=":
		return v <= c.Limit
	case ">":
		return v > c.Limit
	case "<":
		return v < c.Limit
	}
	return false
}

// Default timeouts per kind, used when a step sets none. Manual steps wait for a person, unbounded.
const (
	DefaultCommandTimeout = 10 * time.Minute
	DefaultRollingTimeout = 30 * time.Minute // all the servers together
	DefaultSQLTimeout     = 5 * time.Minute
	DefaultCheckTimeout   = time.Minute
	DefaultRetryDelay     = 10 * time.Second
	DefaultMinDays        = 14
	DefaultRole           = "pganalytics"
	DefaultDatabase       = "${DATABASE_URL}"
)

// EffectiveTimeout is the step's timeout, or its kind's default; zero for manual steps.
func (s *Step) EffectiveTimeout() time.Duration {
	if s.Timeout.D() > 0 {
		return s.Timeout.D()
	}
	switch s.Kind {
	case KindCommand:
		return DefaultCommandTimeout
	case KindRolling:
		return DefaultRollingTimeout
	case KindSQL:
		return DefaultSQLTimeout
	case KindCheck:
		switch s.Check {
		case CheckSmoke:
			return DefaultCommandTimeout
		case CheckPerformance: // the window, then the scrapes and queries
			if s.Window.D() != 0 {
				return s.Window.D() + DefaultCheckTimeout
			}
			return DefaultPerfWindow + DefaultCheckTimeout
		}
		return DefaultCheckTimeout
	}
	return 0
}

func (s *Step) effectiveRetryDelay() time.Duration {
	if s.RetryDelay.D() > 0 {
		return s.RetryDelay.D()
	}
	return DefaultRetryDelay
}

func (s *Step) databaseRef() string {
	if s.Database != "" {
		return s.Database
	}
	return DefaultDatabase
}

// Target addresses what to run: a whole phase, or one step of it ("staging" or "staging/health").
type Target struct {
	Phase string
	Step  string // empty: the whole phase
}

func (t Target) String() string {
	if t.Step == "" {
		return t.Phase
	}
	return t.Phase + "/" + t.Step
}

// ParseTarget reads "PHASE" or "PHASE/STEP".
func ParseTarget(s string) (Target, error) {
	phase, step, hasStep := strings.Cut(s, "/")
	if !idRe.MatchString(phase) || (hasStep && !idRe.MatchString(step)) {
		return Target{}, fmt.Errorf("invalid target %q (write PHASE or PHASE/STEP)", s)
	}
	return Target{Phase: phase, Step: step}, nil
}

// Phase returns the phase with the given ID.
func (rb *Runbook) Phase(id string) (*Phase, bool) {
	for i := range rb.Phases {
		if rb.Phases[i].ID == id {
			return &rb.Phases[i], true
		}
	}
	return nil, false
}

// Step returns the step with the given ID.
func (p *Phase) Step(id string) (*Step, bool) {
	for i := range p.Steps {
		if p.Steps[i].ID == id {
			return &p.Steps[i], true
		}
	}
	return nil, false
}

// Select returns the phase and the steps a target names, in run order.
func (rb *Runbook) Select(t Target) (*Phase, []*Step, error) {
	p, ok := rb.Phase(t.Phase)
	if !ok {
		return nil, nil, fmt.Errorf("no phase %q in runbook (phases: %s)", t.Phase, strings.Join(rb.phaseIDs(), ", "))
	}
	if t.Step != "" {
		s, ok := p.Step(t.Step)
		if !ok {
			return nil, nil, fmt.Errorf("no step %q in phase %q", t.Step, t.Phase)
		}
		return p, []*Step{s}, nil
	}
	steps := make([]*Step, len(p.Steps))
	for i := range p.Steps {
		steps[i] = &p.Steps[i]
	}
	return p, steps, nil
}

func (rb *Runbook) phaseIDs() []string {
	ids := make([]string, len(rb.Phases))
	for i, p := range rb.Phases {
		ids[i] = p.ID
	}
	return ids
}

func joinQuoted[T ~string](vs []T) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(string(v))
	}
	return strings.Join(q, ", ")
}

// DestructiveAhead lists, as PHASE/STEP, the destructive steps a run would execute: those of target
// for a new run, the unfinished ones of resumed when resuming.
func (rb *Runbook) DestructiveAhead(t Target, resumed *RunState) ([]string, error) {
	var refs []string
	if resumed != nil {
		for _, s := range resumed.Steps {
			if s.Destructive && s.Status != StatusSucceeded && s.Status != StatusSkipped {
				refs = append(refs, s.Phase+"/"+s.Step)
			}
		}
		return refs, nil
	}
	p, steps, err := rb.Select(t)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		if s.Destructive {
			refs = append(refs, p.ID+"/"+s.ID)
		}
	}
	return refs, nil
}
