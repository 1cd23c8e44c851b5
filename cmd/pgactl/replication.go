package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/backoff"
	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/internal/topology"
)

func newReplicationCmd() *cobra.Command {
	var (
		conn        apiFlags
		watch       bool
		collectorID string
		output      string
		atText      string
	)
	cmd := &cobra.Command{
		Use:   "replication",
		Short: "Show the replication topology, live or as it was at a time",
		Long: `Show the replication topology (GET /api/v1/replication): per cluster, merged from every
collector that watches one of its members, the tree of its members (primary → standbys → cascading
standbys, each under the upstream it streams from, with timeline, lag to its upstream and to the
primary), each replication row with state, sync state and lag in bytes and seconds, replication slots
with retained WAL and wal_status, and logical subscriptions; then when each collector last reported.
--collector shows that one collector's own snapshot instead. --at shows the clusters as the server's
history holds them at that time (an RFC 3339 time, or a duration meaning that long ago). --watch
follows the live event stream and reprints on every push, reconnecting when the stream breaks.

Credentials: a token ($PGACTL_TOKEN or the context's token), else the admin login, else the viewer
login (any role can read the topology).`,
		Example: `  pgactl replication
  pgactl replication --at 2026-02-27T14:05:00Z
  pgactl replication --at 30m -o json
  pgactl replication --collector 3f2a... -o json
  pgactl replication --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return exitcode.With(exitcode.Usage, fmt.Errorf("unknown output format %q (want table or json)", output))
			}
			var at time.Time
			if atText != "" {
				var err error
				if at, err = parseWhen(atText, time.Now()); err != nil {
					return exitcode.With(exitcode.Usage, fmt.Errorf("--at: %w", err))
				}
				if watch || collectorID != "" {
					return exitcode.With(exitcode.Usage, errors.New("--at cannot be combined with --watch or --collector: the history is kept per cluster"))
				}
			}
			s, err := conn.session(cmd)
			if err != nil {
				return err
			}
			v := &replicationView{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: output == "json", collectorID: collectorID, at: at}
			v.tty = isTerminal(cmd.OutOrStdout())
			if !watch {
				return v.once(cmd.Context(), s)
			}
			return v.watch(cmd.Context(), s)
		},
	}
	conn.register(cmd.Flags())
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the live stream and reprint on every change")
	cmd.Flags().StringVar(&collectorID, "collector", "", "only this collector's own snapshot (collector id)")
	cmd.Flags().StringVar(&atText, "at", "", "the topology at this time: RFC 3339, or a duration ago (90m)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// apiSession holds the authenticated client and can log in again when a watch outlives the token.
type apiSession struct {
	base   *client.Client
	ctx    client.Context
	cmd    *cobra.Command
	authed *client.Client
}

func (s *apiSession) canRelogin() bool { return s.ctx.Token == "" }

// session resolves the connection flags and logs in: the session of a command that talks to the API.
func (f *apiFlags) session(cmd *cobra.Command) (*apiSession, error) {
	ctx, err := f.resolve(client.Context{})
	if err != nil {
		return nil, err
	}
	cl, err := f.newClient(ctx)
	if err != nil {
		return nil, err
	}
	s := &apiSession{base: cl, ctx: ctx, cmd: cmd}
	return s, s.login(cmd.Context())
}

func (s *apiSession) login(ctx context.Context) error {
	if s.ctx.Token != "" {
		s.authed = s.base.WithToken(s.ctx.Token)
		return nil
	}
	user, pw, envVar := s.ctx.Username, &s.ctx.Password, client.EnvPassword
	if user == "" {
		user, pw, envVar = s.ctx.ViewerUsername, &s.ctx.ViewerPassword, client.EnvViewerPassword
	}
	if user == "" {
		return exitcode.With(exitcode.Usage, fmt.Errorf("no credentials: set %s, or %s and %s (or the viewer's)", client.EnvToken, client.EnvUsername, client.EnvPassword))
	}
	if err := fillPassword(s.cmd, "user", user, pw, envVar); err != nil {
		return err
	}
	tp, err := s.base.Login(ctx, user, *pw)
	if err != nil {
		return exitFor(fmt.Errorf("login as %q: %w", user, err))
	}
	s.authed = s.base.WithToken(tp.AccessToken)
	return nil
}

// replicationView renders topologies as tables or JSON.
type replicationView struct {
	out, errOut io.Writer
	json        bool
	tty         bool
	collectorID string
	at          time.Time
	latest      map[string]api.CollectorTopology
	names       map[string]string // system identifier → cluster name, as the server named them
}

func (v *replicationView) once(ctx context.Context, s *apiSession) error {
	var (
		rr  api.ReplicationResponse
		err error
	)
	if v.at.IsZero() {
		rr, err = s.authed.Replication(ctx, v.collectorID)
	} else {
		rr, err = s.authed.ReplicationAt(ctx, v.at)
	}
	if err != nil {
		return exitFor(err)
	}
	if rr.Clusters == nil && v.at.IsZero() {
		rr.Clusters = topology.Merge(rr.Collectors, nil) // a server from before merged views
	}
	if v.json {
		enc := json.NewEncoder(v.out)
		enc.SetIndent("", "  ")
		return enc.Encode(rr)
	}
	return v.render(rr.Clusters, rr.Collectors, time.Now())
}

// render prints the fleet view (the clusters, then the collectors' freshness), the history view
// (the clusters at v.at), or one collector's own snapshot (--collector).
func (v *replicationView) render(clusters []api.ClusterView, collectors []api.CollectorTopology, now time.Time) error {
	switch {
	case v.collectorID != "":
		return renderTopologies(v.out, collectors, now)
	case !v.at.IsZero():
		fmt.Fprintf(v.out, "topology at %s (from the server's history)\n", v.at.UTC().Format(time.RFC3339))
		if len(clusters) == 0 {
			_, err := fmt.Fprintln(v.out, "no cluster was being watched then")
			return err
		}
		return renderClusters(v.out, clusters, nil, now)
	}
	return renderClusters(v.out, clusters, collectors, now)
}

// watch prints the current state, then follows the stream: a table is reprinted whole (the screen
// cleared on a terminal), JSON is one CollectorTopology per line. It returns nil when ctx ends.
func (v *replicationView) watch(ctx context.Context, s *apiSession) error {
	v.latest = map[string]api.CollectorTopology{}
	v.names = map[string]string{}
	return s.follow(ctx, v.errOut, func(ctx context.Context, reset func()) error {
		rr, err := s.authed.Replication(ctx, v.collectorID)
		if err != nil {
			return err
		}
		for _, c := range rr.Clusters {
			v.names[c.SystemIdentifier] = c.Name
		}
		for _, t := range rr.Collectors {
			v.update(t)
		}
		return s.authed.StreamReplication(ctx, func(t api.CollectorTopology) {
			if v.collectorID == "" || t.CollectorID == v.collectorID {
				reset()
				v.update(t)
			}
		})
	})
}

// follow runs connect, one stream connection after another, until ctx ends (nil). connect calls
// reset when data arrives, so that a stream that lived long retries quickly again. An expired access
// token is renewed; a 4xx other than 429 ends it; other failures wait the backoff (1 s doubling to
// 30 s, or the server's retry hint or Retry-After when longer) before the next connection.
func (s *apiSession) follow(ctx context.Context, errOut io.Writer, connect func(ctx context.Context, reset func()) error) error {
	bo := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for {
		err := connect(ctx, bo.Reset)
		if ctx.Err() != nil {
			return nil
		}
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized && s.canRelogin() {
			// The access token expired during a long watch: log in again.
			if lerr := s.login(ctx); lerr != nil {
				return lerr
			}
			continue
		}
		if errors.As(err, &apiErr) && apiErr.Status != http.StatusTooManyRequests && apiErr.Status < 500 {
			return exitFor(err)
		}
		wait := bo.Next()
		var se *client.StreamError
		if errors.As(err, &se) && se.Retry > 0 {
			wait = se.Retry
		}
		if apiErr != nil && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		fmt.Fprintf(errOut, "pgactl: %v; reconnecting in %s\n", err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (v *replicationView) update(t api.CollectorTopology) {
	v.latest[t.CollectorID] = t
	if v.json {
		line, err := json.Marshal(t)
		if err == nil {
			fmt.Fprintf(v.out, "%s\n", line)
		}
		return
	}
	all := make([]api.CollectorTopology, 0, len(v.latest))
	for _, t := range v.latest {
		all = append(all, t)
	}
	if v.tty {
		fmt.Fprint(v.out, "\x1b[H\x1b[2J")
	} else {
		fmt.Fprintf(v.out, "--- %s\n", time.Now().UTC().Format(time.RFC3339))
	}
	// The same merge the server does, over the topologies streamed so far.
	if err := v.render(topology.Merge(all, v.names), all, time.Now()); err != nil {
		fmt.Fprintln(v.errOut, "pgactl:", err)
	}
}

// renderClusters prints one block per cluster (its members as a tree), then, when collectors is
// not nil, one line per collector saying when it last reported.
func renderClusters(w io.Writer, clusters []api.ClusterView, collectors []api.CollectorTopology, now time.Time) error {
	var b strings.Builder
	if len(clusters) == 0 && collectors != nil {
		b.WriteString("no topology yet: no collector has pushed a replication snapshot\n")
	}
	for i := range clusters {
		if i > 0 {
			b.WriteString("\n")
		}
		renderClusterView(&b, &clusters[i])
	}
	if len(collectors) > 0 {
		collectors = slices.Clone(collectors)
		slices.SortFunc(collectors, func(a, b api.CollectorTopology) int {
			return strings.Compare(a.CollectorName+a.CollectorID, b.CollectorName+b.CollectorID)
		})
		b.WriteString("\ncollectors\n")
		for _, t := range collectors {
			stale := ""
			if t.Stale {
				stale = "  [STALE: no push within two intervals]"
			}
			fmt.Fprintf(&b, "  %s (%s)  received %s (%s ago)%s\n", t.CollectorName, t.CollectorID,
				t.ReceivedAt.UTC().Format(time.RFC3339), now.Sub(t.ReceivedAt).Round(time.Second), stale)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// renderClusterView prints a merged cluster: the member tree first.
func renderClusterView(w io.Writer, c *api.ClusterView) {
	flag := ""
	switch primaries := topology.Primaries(&c.Cluster); {
	case c.Split:
		flag = "  [SPLIT BRAIN: " + strings.Join(primaries, ", ") + " all answer as primary]"
	case len(primaries) == 0:
		flag = "  [NO PRIMARY]"
	}
	fmt.Fprintf(w, "cluster %s (%s)  timeline %d%s\n", c.Name, c.SystemIdentifier, c.Timeline, flag)
	depth := topology.Depths(&c.Cluster)
	var rows [][]string
	for _, in := range c.Instances {
		name := strings.Repeat("  ", depth[in.Name])
		if depth[in.Name] > 0 {
			name += "└ "
		}
		name += in.Name
		note := in.Error
		if in.Role == "standby" {
			note = standbyNote(in)
		}
		tl := "-"
		if in.Up {
			tl = strconv.FormatInt(in.Timeline, 10)
		}
		row := []string{name, in.Role, dash(in.Upstream), tl, optBytes(in.UpstreamLagBytes), optBytes(in.PrimaryLagBytes),
			in.Address, yesNo(in.Up)}
		if c.Patroni != nil {
			row = append(row, patroniText(topology.PatroniMemberOf(&c.Cluster, &in)))
		}
		rows = append(rows, append(row, dash(note)))
	}
	header := []string{"INSTANCE", "ROLE", "UPSTREAM", "TL", "LAG TO UPSTREAM", "LAG TO PRIMARY", "ADDRESS", "UP", "NOTE"}
	if c.Patroni != nil {
		header = slices.Insert(header, len(header)-1, "PATRONI")
	}
	writeTable(w, header, rows)
	if c.Patroni != nil {
		renderPatroni(w, c)
	}
	renderRows(w, c.Standbys, c.Slots, c.Subscriptions)
}

// patroniText is Patroni's word on one member, for the PATRONI column.
func patroniText(m *api.PatroniMember) string {
	switch {
	case m == nil:
		return "-"
	case m.Error != "":
		return "does not answer (!)"
	}
	parts := []string{m.Role, m.State, "tl " + strconv.FormatInt(m.Timeline, 10)}
	if m.LagBytes != nil {
		parts = append(parts, "lag "+bytesHuman(*m.LagBytes))
	}
	if m.PendingRestart {
		parts = append(parts, "pending restart")
	}
	return strings.Join(parts, " ")
}

// renderPatroni prints Patroni's view of the cluster and where it disagrees with PostgreSQL's.
func renderPatroni(w io.Writer, c *api.ClusterView) {
	p := c.Patroni
	leader := p.Leader
	if leader == "" {
		leader = "none (!)"
	}
	fmt.Fprintf(w, "  patroni %s  leader %s", p.Scope, leader)
	if p.Paused {
		fmt.Fprint(w, "  [PAUSED: no automatic failover]")
	}
	if u := topology.PatroniUnwatched(&c.Cluster); len(u) > 0 {
		fmt.Fprintf(w, "  not watched: %s", strings.Join(u, ", "))
	}
	if n := len(p.History); n > 0 && p.History[n-1].At != nil {
		last := p.History[n-1]
		fmt.Fprintf(w, "  last switch %s (timeline %d → %s)", last.At.UTC().Format(time.RFC3339), last.Timeline, dash(last.NewLeader))
	}
	fmt.Fprintf(w, "  via %s\n", p.ReportedBy)
	for _, d := range p.Disagreements {
		fmt.Fprintf(w, "  DISAGREES %s: %s\n", d.Code, d.Message)
	}
}

func optBytes(p *int64) string {
	if p == nil {
		return "-"
	}
	return bytesHuman(*p)
}

// renderTopologies prints one block per collector, sorted by name, one section per cluster.
func renderTopologies(w io.Writer, topos []api.CollectorTopology, now time.Time) error {
	if len(topos) == 0 {
		_, err := fmt.Fprintln(w, "no topology yet: no collector has pushed a replication snapshot")
		return err
	}
	topos = slices.Clone(topos)
	slices.SortFunc(topos, func(a, b api.CollectorTopology) int {
		return strings.Compare(a.CollectorName+a.CollectorID, b.CollectorName+b.CollectorID)
	})
	var b strings.Builder
	for i, t := range topos {
		if i > 0 {
			b.WriteString("\n")
		}
		stale := ""
		if t.Stale {
			stale = "  [STALE: no push within two intervals]"
		}
		fmt.Fprintf(&b, "collector %s (%s)  received %s (%s ago)%s\n", t.CollectorName, t.CollectorID,
			t.ReceivedAt.UTC().Format(time.RFC3339), now.Sub(t.ReceivedAt).Round(time.Second), stale)
		if len(t.Snapshot.Clusters) == 0 {
			b.WriteString("  no clusters in the snapshot\n")
		}
		for _, c := range t.Snapshot.Clusters {
			renderCluster(&b, c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable aligns one table on its own, indented under its cluster.
func writeTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range append([][]string{header}, rows...) {
		fmt.Fprintf(tw, "    %s\n", strings.Join(r, "\t"))
	}
	tw.Flush()
}

func renderCluster(w io.Writer, c api.Cluster) {
	fmt.Fprintf(w, "  cluster %s  timeline %d\n", c.SystemIdentifier, c.Timeline)
	var rows [][]string
	for _, in := range c.Instances {
		note := in.Error
		if in.Role == "standby" {
			note = standbyNote(in)
		}
		rows = append(rows, []string{in.Name, in.Role, in.Address, yesNo(in.Up), strconv.Itoa(in.ServerVersion), dash(in.WALLSN), dash(note)})
	}
	writeTable(w, []string{"INSTANCE", "ROLE", "ADDRESS", "UP", "VERSION", "WAL LSN", "NOTE"}, rows)
	renderRows(w, c.Standbys, c.Slots, c.Subscriptions)
}

// renderRows prints a cluster's replication rows, slots and subscriptions.
func renderRows(w io.Writer, standbys []api.Standby, slots []api.Slot, subs []api.Subscription) {
	var rows [][]string
	if len(standbys) > 0 {
		for _, s := range standbys {
			state := s.State
			if state != "streaming" {
				state += " (!)"
			}
			rows = append(rows, []string{s.ApplicationName, dash(s.Upstream), dash(s.Instance), dash(s.ClientAddr), state, dash(s.SyncState),
				bytesHuman(s.SentLagBytes), bytesHuman(s.ReplayLagBytes),
				fmt.Sprintf("%.1f/%.1f/%.1f", s.WriteLagSeconds, s.FlushLagSeconds, s.ReplayLagSeconds),
				fmt.Sprintf("%.1fs", s.ReplyAgeSeconds)})
		}
		writeTable(w, []string{"STANDBY", "UPSTREAM", "INSTANCE", "CLIENT", "STATE", "SYNC", "SENT LAG", "REPLAY LAG", "WRITE/FLUSH/REPLAY S", "REPLY AGE"}, rows)
	}
	if len(slots) > 0 {
		rows = rows[:0]
		for _, s := range slots {
			status := dash(s.WALStatus)
			if s.WALStatus == "unreserved" || s.WALStatus == "lost" {
				status += " (!)"
			}
			safe := "-"
			if s.SafeWALSizeBytes != nil {
				safe = bytesHuman(*s.SafeWALSizeBytes)
			}
			rows = append(rows, []string{s.Name, dash(s.Instance), s.Type, yesNo(s.Active), bytesHuman(s.RetainedBytes), status, safe})
		}
		writeTable(w, []string{"SLOT", "INSTANCE", "TYPE", "ACTIVE", "RETAINED WAL", "WAL STATUS", "SAFE WAL SIZE"}, rows)
	}
	if len(subs) > 0 {
		rows = rows[:0]
		for _, s := range subs {
			age := "-"
			if s.LastMsgAgeSeconds != nil {
				age = fmt.Sprintf("%.1fs", *s.LastMsgAgeSeconds)
			}
			rows = append(rows, []string{s.Name, s.Instance, yesNo(s.Enabled), age,
				strconv.FormatInt(s.ApplyErrors, 10), strconv.FormatInt(s.SyncErrors, 10), strconv.FormatInt(s.RelNotReady, 10)})
		}
		writeTable(w, []string{"SUBSCRIPTION", "INSTANCE", "ENABLED", "LAST MSG AGE", "APPLY ERR", "SYNC ERR", "RELS NOT READY"}, rows)
	}
}

func standbyNote(in api.Instance) string {
	var parts []string
	if in.Receiver != nil {
		if in.Receiver.Connected {
			parts = append(parts, "receiver "+in.Receiver.Status)
		} else {
			parts = append(parts, "receiver disconnected (!)")
		}
	}
	if in.ReplayPaused {
		parts = append(parts, "replay paused (!)")
	}
	parts = append(parts, "receive-replay "+bytesHuman(in.ReceiveReplayLagBytes), "delay "+optSecondsText(in.ReplayDelaySeconds))
	if in.Error != "" {
		parts = append(parts, in.Error)
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bytesHuman prints IEC units: lag in "16.0 MiB" reads faster than 16777216.
func bytesHuman(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + bytesHuman(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// optSecondsText prints an optional number of seconds; "?" when the standby could not tell.
func optSecondsText(p *float64) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf("%.1fs", *p)
}
