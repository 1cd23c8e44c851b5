package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/smoke"
)

// apiFlags are the connection flags of commands that talk to the API. Passwords have no flag: they
// come from the environment, a password file, the contexts file or a prompt.
type apiFlags struct {
	configPath     string
	contextName    string
	apiURL         string
	caFile         string
	username       string
	passwordFile   string
	viewerUsername string
	viewerPwFile   string
	insecure       bool
	timeout        time.Duration
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "contexts file (default $"+client.EnvConfig+" or ~/.config/pgactl/config.toml)")
	fs.StringVar(&f.contextName, "context", "", "named context from the contexts file (default $"+client.EnvContext+" or current_context)")
	fs.StringVar(&f.apiURL, "api-url", "", "API base URL, e.g. https://api.example.com (default $"+client.EnvAPIURL+")")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify the API with (default $"+client.EnvCAFile+")")
	fs.StringVar(&f.username, "username", "", "admin username (default $"+client.EnvUsername+"); password from $"+client.EnvPassword+", a password file or a prompt")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the admin password (default $"+client.EnvPasswordFile+")")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the API's TLS certificate (the tls-certificate check still does)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "per-request timeout")
}

// resolve merges flags, environment and contexts file (client.ResolveContext).
func (f *apiFlags) resolve(extra client.Context) (client.Context, error) {
	for dst, flag := range map[*string]string{&extra.Name: f.contextName, &extra.APIURL: f.apiURL, &extra.CAFile: f.caFile,
		&extra.Username: f.username, &extra.PasswordFile: f.passwordFile, &extra.ViewerUsername: f.viewerUsername,
		&extra.ViewerPasswordFile: f.viewerPwFile} {
		if flag != "" {
			*dst = flag
		}
	}
	extra.InsecureSkipVerify = extra.InsecureSkipVerify || f.insecure
	c, err := client.ResolveContext(extra, f.configPath, os.Getenv)
	if err != nil {
		return c, exitcode.With(exitcode.Usage, err)
	}
	return c, nil
}

// cliRateLimitWaits is how many 429 answers one pgactl call waits out before it reports one.
const cliRateLimitWaits = 3

func (f *apiFlags) newClient(c client.Context) (*client.Client, error) {
	opts := c.Options()
	opts.Timeout = f.timeout
	opts.UserAgent = "pgactl/" + buildinfo.String()
	// A 429 is the API asking to wait (right after a smoke run spent the budget, say), not a
	// failure: every command and the console wait out a few, each at most 30 s.
	opts.RateLimitRetries = cliRateLimitWaits
	cl, err := client.New(opts)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return cl, nil
}

// fillPassword prompts on the terminal for a password the context lacks; without a terminal it is a
// usage error, since a script must say where the password comes from.
func fillPassword(cmd *cobra.Command, who, username string, password *string, envVar string) error {
	if username == "" || *password != "" {
		return nil
	}
	fd := os.Stdin.Fd()
	if !term.IsTerminal(fd) {
		return exitcode.With(exitcode.Usage, fmt.Errorf("no password for %s %q: set %s, a password file, or run on a terminal to be prompted", who, username, envVar))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Password for %s %q: ", who, username)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return exitcode.With(exitcode.Usage, fmt.Errorf("read password: %w", err))
	}
	*password = strings.TrimRight(string(pw), "\r\n")
	if *password == "" {
		return exitcode.With(exitcode.Usage, fmt.Errorf("empty password for %s %q", who, username))
	}
	return nil
}

// exitFor maps an API-side error to the exit-code contract.
func exitFor(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrUnreachable):
		return exitcode.With(exitcode.Unreachable, err)
	case errors.Is(err, smoke.ErrAuthFailed):
		return exitcode.With(exitcode.Auth, err)
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && (apiErr.Status == 401 || apiErr.Status == 403) {
		return exitcode.With(exitcode.Auth, err)
	}
	return exitcode.With(exitcode.CheckFailed, err)
}

func newSmokeCmd() *cobra.Command {
	var (
		conn         apiFlags
		databaseURL  string
		corsOrigin   string
		output       string
		only, skip   []string
		retryTimeout time.Duration
		checkTimeout time.Duration
		certMinDays  float64
		rateRequests int
		list         bool
		strict       bool
	)
	cmd := &cobra.Command{
		Use:   "smoke",
		Short: "Run the deployment smoke checks against an API",
		Long: `Run the v3.2.0 deployment smoke checks against a pgAnalytics API: health, security headers,
TLS certificate, login, RBAC, refresh-token rotation, CORS, SQL-injection probes, error hygiene,
registration secret, metrics freshness, the seed's SQL checks (with a database URL) and, last,
rate limiting (it spends the request budget; --skip rate-limit to keep it).

Exit codes: 0 all passed, 1 a check failed (or, with --strict, was skipped), 2 usage or config
error, 3 API unreachable, 4 admin login refused.`,
		Example: `  # against the local demo (it writes its environment to a file)
  set -a; . ~/.local/state/pgactl/demo/demo.env; set +a; pgactl smoke
  pgactl smoke --api-url https://api.example.com --ca-file ca.pem --username admin -o junit > smoke.xml
  pgactl smoke --only health,security-headers,tls-certificate
  pgactl smoke --skip rate-limit --retry-timeout 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if list {
				return listChecks(out)
			}
			if databaseURL != "" {
				if u, err := url.Parse(databaseURL); err == nil && u.User != nil {
					if _, has := u.User.Password(); has {
						return exitcode.With(exitcode.Usage, fmt.Errorf("--database-url holds a password: set %s or database_url in the contexts file instead", client.EnvDatabaseURL))
					}
				}
			}
			if certMinDays <= 0 || rateRequests <= 0 || checkTimeout <= 0 {
				return exitcode.With(exitcode.Usage, errors.New("--cert-min-days, --rate-limit-requests and --check-timeout must be positive"))
			}
			rep, err := smoke.NewReporter(output, out)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			ctx, err := conn.resolve(client.Context{DatabaseURL: databaseURL})
			if err != nil {
				return err
			}
			if err := fillPassword(cmd, "admin", ctx.Username, &ctx.Password, client.EnvPassword); err != nil {
				return err
			}
			if err := fillPassword(cmd, "viewer", ctx.ViewerUsername, &ctx.ViewerPassword, client.EnvViewerPassword); err != nil {
				return err
			}
			cl, err := conn.newClient(ctx)
			if err != nil {
				return err
			}
			cfg := smoke.ConfigFor(cl, ctx, os.Getenv)
			if corsOrigin != "" {
				cfg.CORSOrigin = corsOrigin
			}
			cfg.CertMinValidity = time.Duration(certMinDays * float64(24*time.Hour))
			cfg.RateLimitRequests = rateRequests
			cfg.CheckTimeout = checkTimeout
			cfg.Only, cfg.Skip = only, skip
			suite, err := smoke.New(cfg)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			return runSmoke(cmd.Context(), cmd.ErrOrStderr(), cl, suite, rep, retryTimeout, strict)
		},
	}
	fs := cmd.Flags()
	conn.register(fs)
	fs.StringVar(&conn.viewerUsername, "viewer-username", "", "viewer username for the RBAC check (default $"+client.EnvViewerUsername+"); password from $"+client.EnvViewerPassword+", a password file or a prompt")
	fs.StringVar(&conn.viewerPwFile, "viewer-password-file", "", "file holding the viewer password (default $"+client.EnvViewerPasswordFile+")")
	fs.StringVar(&databaseURL, "database-url", "", "metrics database URL without a password, for the SQL checks (default $"+client.EnvDatabaseURL+")")
	fs.StringVar(&corsOrigin, "cors-origin", "", "an origin the API allows, for the CORS check (default $"+smoke.EnvCORSOrigin+")")
	fs.StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(smoke.Formats(), "|"))
	fs.StringSliceVar(&only, "only", nil, "run only these checks (comma list)")
	fs.StringSliceVar(&skip, "skip", nil, "skip these checks (comma list), e.g. rate-limit")
	fs.DurationVar(&retryTimeout, "retry-timeout", 0, "wait up to this long for the API to be healthy before running")
	fs.DurationVar(&checkTimeout, "check-timeout", 30*time.Second, "time limit of each check (rate-limit gets twice this)")
	fs.Float64Var(&certMinDays, "cert-min-days", 14, "fail the TLS check when the certificate expires within this many days")
	fs.IntVar(&rateRequests, "rate-limit-requests", 300, "requests the rate-limit check sends at most before expecting a 429")
	fs.BoolVar(&list, "list", false, "list the checks and exit")
	fs.BoolVar(&strict, "strict", false, "a skipped check fails the run (exit 1), for CI")
	return cmd
}

func listChecks(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range smoke.Checks() {
		fmt.Fprintf(tw, "%s\t%s\n", n, smoke.Describe(n))
	}
	return tw.Flush()
}

func runSmoke(ctx context.Context, stderr io.Writer, cl *client.Client, suite *smoke.Suite, rep smoke.Reporter, retryTimeout time.Duration, strict bool) error {
	if retryTimeout > 0 {
		if err := smoke.WaitHealthy(ctx, cl, retryTimeout); err != nil {
			if errors.Is(err, client.ErrUnreachable) {
				return exitcode.With(exitcode.Unreachable, err)
			}
			// Reachable but unhealthy: run anyway, the health check will say why.
			fmt.Fprintln(stderr, "pgactl: warning:", err)
		}
	}
	if err := rep.Start(suite.Selected()); err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	var writeErr error
	sum, err := suite.Stream(ctx, func(r smoke.Result) {
		if e := rep.Result(r); e != nil && writeErr == nil {
			writeErr = e
		}
	})
	if err != nil {
		return exitFor(err)
	}
	if err := rep.Finish(sum); err != nil && writeErr == nil {
		writeErr = err
	}
	if writeErr != nil {
		return exitcode.With(exitcode.Usage, fmt.Errorf("write report: %w", writeErr))
	}
	if sum.Failed > 0 {
		return exitcode.With(exitcode.CheckFailed, fmt.Errorf("%d of %d checks failed", sum.Failed, sum.Passed+sum.Failed+sum.Skipped))
	}
	if strict && sum.Skipped > 0 {
		return exitcode.With(exitcode.CheckFailed, fmt.Errorf("%d of %d checks skipped (--strict): give them what they need (pgactl smoke --list)", sum.Skipped, sum.Passed+sum.Skipped))
	}
	return nil
}
