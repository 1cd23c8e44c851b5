package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func newAlertsCmd() *cobra.Command {
	var (
		conn   apiFlags
		output string
	)
	session := conn.session
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List the alerts of the API's rules; test delivery; silence",
		Long: `List the alerts the API's rules hold (GET /api/v1/alerts): firing, pending and recently
resolved, with since, value against threshold and the runbook page. "pgactl alerts test" proves
that an alert reaches every Alertmanager; "pgactl alerts silence" silences alerts there.`,
		Example: `  pgactl alerts
  pgactl alerts -o json
  pgactl alerts test
  pgactl alerts silence alertname=ReplicationLagHigh application_name=report-1 --for 2h --comment "rebuild"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return exitcode.With(exitcode.Usage, fmt.Errorf("unknown output format %q (want table or json)", output))
			}
			s, err := session(cmd)
			if err != nil {
				return err
			}
			ar, err := s.authed.Alerts(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ar)
			}
			printAlerts(cmd.OutOrStdout(), ar, time.Now())
			return nil
		},
	}
	conn.register(cmd.PersistentFlags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")

	var timeout time.Duration
	test := &cobra.Command{
		Use:   "test",
		Short: "Send a synthetic alert through the API to every Alertmanager and confirm it arrived",
		Long: `Send a uniquely labelled synthetic alert (alertname PgAnalyticsDeliveryTest) through the API's
delivery path to every configured Alertmanager, ask each one until it holds the alert (or --wait
passes), then resolve it. Exit 0 when every Alertmanager got it, 1 when one did not, 3 when the API
cannot be reached. Needs an operator or admin login.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := session(cmd)
			if err != nil {
				return err
			}
			return alertTest(cmd.Context(), s.authed, cmd.OutOrStdout(), timeout)
		},
	}
	test.Flags().DurationVar(&timeout, "wait", 30*time.Second, "how long to wait for every Alertmanager")

	var (
		duration time.Duration
		comment  string
	)
	silence := &cobra.Command{
		Use:   "silence LABEL=VALUE...",
		Short: "Silence the alerts whose labels equal every LABEL=VALUE, on every Alertmanager (audited)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			matchers := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" || v == "" {
					return exitcode.With(exitcode.Usage, fmt.Errorf("%q: want LABEL=VALUE", a))
				}
				matchers[k] = v
			}
			if comment == "" {
				return exitcode.With(exitcode.Usage, fmt.Errorf("--comment: say why"))
			}
			s, err := session(cmd)
			if err != nil {
				return err
			}
			res, err := s.authed.CreateSilence(cmd.Context(), api.SilenceRequest{Matchers: matchers, Duration: duration.String(), Comment: comment})
			if err != nil {
				return exitFor(err)
			}
			failed := 0
			for _, am := range res.Alertmanagers {
				if am.OK {
					fmt.Fprintf(cmd.OutOrStdout(), "silenced on %s until %s (silence %s)\n", am.URL, res.EndsAt.Local().Format(time.DateTime), am.ID)
				} else {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "NOT silenced on %s: %s\n", am.URL, am.Error)
				}
			}
			if failed > 0 {
				return exitcode.With(exitcode.CheckFailed, fmt.Errorf("%d of %d Alertmanagers did not take the silence", failed, len(res.Alertmanagers)))
			}
			return nil
		},
	}
	silence.Flags().DurationVar(&duration, "for", 2*time.Hour, "how long (1m to 168h)")
	silence.Flags().StringVar(&comment, "comment", "", "why (required; recorded in Alertmanager and the audit log)")
	cmd.AddCommand(test, silence)
	return cmd
}

// printAlerts prints the alerts as a table, firing first.
func printAlerts(w io.Writer, ar api.AlertsResponse, now time.Time) {
	rank := map[string]int{"firing": 0, "pending": 1, "resolved": 2}
	alerts := append([]api.Alert(nil), ar.Alerts...)
	sort.SliceStable(alerts, func(i, j int) bool {
		if rank[alerts[i].State] != rank[alerts[j].State] {
			return rank[alerts[i].State] < rank[alerts[j].State]
		}
		return alerts[i].Severity == "critical" && alerts[j].Severity != "critical"
	})
	if ar.EvaluatedAt.IsZero() {
		fmt.Fprintln(w, "not evaluated yet")
	} else {
		fmt.Fprintf(w, "%d alerts, evaluated %s ago\n", len(alerts), now.Sub(ar.EvaluatedAt).Round(time.Second))
	}
	if len(alerts) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tSEVERITY\tALERT\tSINCE\tVALUE/THRESHOLD\tSUMMARY\tRUNBOOK")
	for _, a := range alerts {
		since := a.ActiveAt
		switch {
		case a.Since != nil:
			since = *a.Since
		case a.ResolvedAt != nil:
			since = *a.ResolvedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%g/%g\t%s\t%s\n", a.State, a.Severity, a.Name,
			now.Sub(since).Round(time.Second), a.Value, a.Threshold, a.Summary, a.RunbookURL)
	}
	_ = tw.Flush()
}

// alertTest runs the delivery self-test and prints each Alertmanager's result.
func alertTest(ctx context.Context, cl *client.Client, out io.Writer, wait time.Duration) error {
	last, err := cl.TestAlertDelivery(ctx, wait, 500*time.Millisecond)
	if last.ID == "" {
		return exitFor(err)
	}
	fmt.Fprintf(out, "sent test alert %s to %d Alertmanager(s)\n", last.ID, len(last.Alertmanagers))
	missing := 0
	for _, am := range last.Alertmanagers {
		if am.OK {
			fmt.Fprintf(out, "PASS  %s holds the test alert\n", am.URL)
			continue
		}
		missing++
		fmt.Fprintf(out, "FAIL  %s: %s\n", am.URL, am.Error)
	}
	if err != nil {
		fmt.Fprintf(out, "could not resolve the test alert (it expires by itself in 10 minutes): %v\n", err)
	} else {
		fmt.Fprintln(out, "resolved the test alert")
	}
	if missing > 0 {
		return exitcode.With(exitcode.CheckFailed, fmt.Errorf("%d of %d Alertmanagers did not get the test alert within %s", missing, len(last.Alertmanagers), wait))
	}
	return nil
}
