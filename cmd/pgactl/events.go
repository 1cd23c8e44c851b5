package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/exitcode"
)

func newEventsCmd() *cobra.Command {
	var (
		conn               apiFlags
		q                  client.EventsQuery
		kinds, since, till string
		output             string
		follow             bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List replication events: promotions, timeline switches, standbys, slots, restarts",
		Long: `List the events the API detected by comparing consecutive states of each cluster
(GET /api/v1/events), newest first: promotion, timeline_switch, standby_attached, standby_detached,
standby_repointed, sync_state_changed, slot_created, slot_dropped, slot_invalidated,
instance_restarted, instance_unreachable, instance_reachable, split_brain, split_brain_resolved,
no_primary, collector_registered, collector_deleted.

--since and --until take an RFC 3339 time or a duration meaning that long ago (2h). --follow prints
the matching page, then every new event as it happens (from the live event stream), oldest first.
With -o json the page is one JSON document (api.EventsResponse); with --follow, one event per line.`,
		Example: `  pgactl events
  pgactl events --cluster orders --since 2h
  pgactl events --kind promotion,split_brain -o json
  pgactl events --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return exitcode.With(exitcode.Usage, fmt.Errorf("unknown output format %q (want table or json)", output))
			}
			now := time.Now()
			var err error
			if since != "" {
				if q.Since, err = parseWhen(since, now); err != nil {
					return exitcode.With(exitcode.Usage, fmt.Errorf("--since: %w", err))
				}
			}
			if till != "" {
				if q.Until, err = parseWhen(till, now); err != nil {
					return exitcode.With(exitcode.Usage, fmt.Errorf("--until: %w", err))
				}
			}
			if kinds != "" {
				q.Kinds = strings.Split(kinds, ",")
			}
			s, err := conn.session(cmd)
			if err != nil {
				return err
			}
			page, err := s.authed.Events(cmd.Context(), q)
			if err != nil {
				return exitFor(err)
			}
			out := cmd.OutOrStdout()
			if !follow {
				if output == "json" {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(page)
				}
				return renderEvents(out, page.Events)
			}
			// Oldest first when following, so the newest line is the last one.
			for i := len(page.Events) - 1; i >= 0; i-- {
				printReplicationEvent(out, page.Events[i], output == "json")
			}
			return followEvents(cmd.Context(), s, q, cmd.ErrOrStderr(), func(e api.Event) { printReplicationEvent(out, e, output == "json") })
		},
	}
	conn.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&q.Cluster, "cluster", "", "only this cluster (name or system identifier)")
	f.StringVar(&q.Instance, "instance", "", "only this member ([[postgres]] name)")
	f.StringVar(&kinds, "kind", "", "only these kinds, comma-separated")
	f.StringVar(&since, "since", "", "from this time: RFC 3339, or a duration ago (2h)")
	f.StringVar(&till, "until", "", "before this time: RFC 3339, or a duration ago")
	f.IntVar(&q.Limit, "limit", 50, "at most this many events (1-1000)")
	f.StringVarP(&output, "output", "o", "table", "output format: table|json")
	f.BoolVar(&follow, "follow", false, "then print new events as they happen")
	return cmd
}

// parseWhen reads an RFC 3339 time, or a duration meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(s, "-"))
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-02-27T15:04:05Z) nor a duration ago (90m)", s)
	}
	return now.Add(-d), nil
}

func renderEvents(w io.Writer, evs []api.Event) error {
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "no events")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEVERITY\tKIND\tCLUSTER\tINSTANCE\tMESSAGE")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Severity, e.Kind, dash(e.Cluster), dash(e.Instance), e.Message)
	}
	return tw.Flush()
}

func printReplicationEvent(w io.Writer, e api.Event, asJSON bool) {
	if asJSON {
		if line, err := json.Marshal(e); err == nil {
			fmt.Fprintf(w, "%s\n", line)
		}
		return
	}
	fmt.Fprintf(w, "%s  %-8s  %-20s  %s  %s  %s\n", e.At.UTC().Format(time.RFC3339), e.Severity, e.Kind, dash(e.Cluster), dash(e.Instance), e.Message)
}

// followEvents prints the stream's events that q selects until ctx ends, reconnecting (and
// logging in again) as the replication view's watch does. Events while disconnected are fetched
// again from GET /events, after the last one printed.
func followEvents(ctx context.Context, s *apiSession, q client.EventsQuery, errOut io.Writer, print func(api.Event)) error {
	var last int64
	match := func(e api.Event) bool {
		return (q.Cluster == "" || e.Cluster == q.Cluster || e.SystemIdentifier == q.Cluster) &&
			(q.Instance == "" || e.Instance == q.Instance) && (len(q.Kinds) == 0 || slices.Contains(q.Kinds, e.Kind))
	}
	emit := func(e api.Event) {
		if e.ID > last && match(e) {
			last = e.ID
			print(e)
		}
	}
	if page, err := s.authed.Events(ctx, client.EventsQuery{Limit: 1}); err == nil && len(page.Events) > 0 {
		last = page.Events[0].ID
	}
	return s.follow(ctx, errOut, func(ctx context.Context, reset func()) error {
		// What happened while the stream was down (nothing new on the first connection).
		if page, err := s.authed.Events(ctx, q); err == nil {
			for i := len(page.Events) - 1; i >= 0; i-- {
				emit(page.Events[i])
			}
		}
		return s.authed.Stream(ctx, client.StreamHandlers{Event: func(e api.Event) { reset(); emit(e) }})
	})
}
