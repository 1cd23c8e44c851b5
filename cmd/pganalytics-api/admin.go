package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/server"
	"github.com/pganalytics/pganalytics/server/auth"
	"github.com/pganalytics/pganalytics/server/config"
	"github.com/pganalytics/pganalytics/server/store"
)

func newMigrateCmd(configPath *string, e env) *cobra.Command {
	return &cobra.Command{
		Use:       "migrate [up|status]",
		Short:     "Apply the embedded schema migrations (up, the default) or list their status",
		Args:      cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"up", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(*configPath, e)
			if err != nil {
				return err
			}
			if err := cfg.ValidateDatabase(); err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			ctx := cmd.Context()
			if len(args) == 1 && args[0] == "status" {
				return migrationStatus(ctx, cfg.Database.URL, e.stdout)
			}
			applied, err := store.Migrate(ctx, cfg.Database.URL)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(e.stdout, "schema is up to date")
				return nil
			}
			for _, name := range applied {
				fmt.Fprintf(e.stdout, "applied %s\n", name)
			}
			return nil
		},
	}
}

func migrationStatus(ctx context.Context, databaseURL string, out io.Writer) error {
	states, err := store.MigrationStatus(ctx, databaseURL)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED AT")
	for _, st := range states {
		at := "pending"
		if st.Applied {
			at = st.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", st.Version, st.Name, at)
	}
	return tw.Flush()
}

func newUserCmd(configPath *string, e env) *cobra.Command {
	user := &cobra.Command{Use: "user", Short: "Manage API users", Args: cobra.NoArgs}
	var (
		role      string
		teamRoles []string
	)
	add := &cobra.Command{
		Use:   "add NAME --role admin|operator|viewer [--team-roles deployment-lead,…]",
		Short: "Create a user; the password is read from stdin (prompted without echo on a terminal)",
		Long: "Create a user. The password is never taken from the command line: it is read from the first\n" +
			"line of stdin (e.g. `pganalytics-api user add alice --role admin < password-file`), or\n" +
			"prompted for twice without echo when stdin is a terminal.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := databaseConfig(*configPath, e)
			if err != nil {
				return err
			}
			if err := server.ValidateNewUser(args[0], role); err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			for _, r := range teamRoles {
				if !api.IsTeamRole(r) {
					return exitcode.With(exitcode.Usage, fmt.Errorf("unknown team role %q (want %s)", r, strings.Join(api.TeamRoles, ", ")))
				}
			}
			password, err := readPassword(e)
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			if err := auth.CheckPasswordPolicy(password); err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			return addUser(cmd.Context(), cfg.Database.URL, cfg.Database.ConnectTimeout.D(), args[0], role, teamRoles, password, e)
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, operator or viewer (required)")
	add.Flags().StringSliceVar(&teamRoles, "team-roles", nil, "the deployment team roles the user holds, for runbook approvals: "+strings.Join(api.TeamRoles, ", "))
	unlock := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Lift every login lock of a user (its own, and its own from any address)",
		Long: "Lift the locks that failed logins put on a user: the account's own lock and its locks from\n" +
			"particular addresses. Locks on addresses (a stranger guessing many names) stay until they\n" +
			"expire. The unlock is written to the audit log.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := databaseConfig(*configPath, e)
			if err != nil {
				return err
			}
			return unlockUser(cmd.Context(), cfg.Database.URL, cfg.Database.ConnectTimeout.D(), args[0], e)
		},
	}
	user.AddCommand(add, unlock)
	return user
}

func unlockUser(ctx context.Context, databaseURL string, connectTimeout time.Duration, name string, e env) error {
	st, err := store.Open(ctx, databaseURL, store.Options{MaxConns: 2, ConnectTimeout: connectTimeout})
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	defer st.Close()
	n, err := st.UnlockUser(ctx, name, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return exitcode.With(exitcode.Usage, fmt.Errorf("no user %q", name))
	}
	if err != nil {
		return err
	}
	detail, err := json.Marshal(map[string]int{"locks_lifted": n})
	if err != nil {
		return err
	}
	if err := st.Audit(ctx, api.AuditEntry{Actor: "cli", Action: "user_unlocked", Target: "user:" + name,
		Success: true, Detail: detail}); err != nil {
		return fmt.Errorf("user unlocked but the audit entry failed: %w", err)
	}
	fmt.Fprintf(e.stdout, "unlocked user %s (%d locks lifted)\n", name, n)
	return nil
}

// databaseConfig loads the configuration of a command that only talks to the database.
func databaseConfig(path string, e env) (*config.Config, error) {
	cfg, err := loadConfig(path, e)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateDatabase(); err != nil {
		return nil, exitcode.With(exitcode.Usage, err)
	}
	return cfg, nil
}

func addUser(ctx context.Context, databaseURL string, connectTimeout time.Duration, name, role string, teamRoles []string, password string, e env) error {
	hasher, err := auth.NewHasher(auth.DefaultArgon2, 1)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, databaseURL, store.Options{MaxConns: 2, ConnectTimeout: connectTimeout})
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, name, hash, role)
	if errors.Is(err, store.ErrConflict) {
		return exitcode.With(exitcode.Usage, fmt.Errorf("user %q already exists", name))
	}
	if err != nil {
		return err
	}
	if len(teamRoles) > 0 {
		if err := st.SetTeamRoles(ctx, u.ID, teamRoles); err != nil {
			return fmt.Errorf("user created but its team roles were not set: %w", err)
		}
	}
	detail, err := json.Marshal(map[string]any{"role": u.Role, "team_roles": teamRoles})
	if err != nil {
		return err
	}
	if err := st.Audit(ctx, api.AuditEntry{Actor: "cli", Action: "user_created", Target: "user:" + u.Username,
		Success: true, Detail: detail}); err != nil {
		return fmt.Errorf("user created but the audit entry failed: %w", err)
	}
	fmt.Fprintf(e.stdout, "created user %s (%s) id %s\n", u.Username, u.Role, u.ID)
	return nil
}

// readPassword takes the first line of stdin, or prompts twice without echo on a terminal.
func readPassword(e env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(f.Fd()) {
		return promptPassword(f.Fd(), e.stderr)
	}
	line, err := bufio.NewReaderSize(e.stdin, 4096).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin (pipe it in, e.g. `user add alice --role admin < password-file`)")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on stdin")
	}
	return pw, nil
}

func promptPassword(fd uintptr, prompt io.Writer) (string, error) {
	read := func(label string) (string, error) {
		fmt.Fprint(prompt, label)
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", errors.New("no password entered")
		}
		return string(pw), nil
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	again, err := read("Repeat password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}

func newVersionCmd(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(e.stdout, "pganalytics-api %s\n", buildinfo.String())
			return nil
		},
	}
}
