// Package snapshot turns the per-instance collections of one cycle into the replication topology a
// person means: instances grouped into clusters by system_identifier, each standby's own view (WAL
// receiver, replay delay) joined with its primary's view of it (pg_stat_replication row, slot).
package snapshot

import (
	"cmp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pganalytics/pganalytics/collector/pgmetrics"
	"github.com/pganalytics/pganalytics/internal/api"
)

// StateDisconnected marks a monitored standby that its primary does not list.
const StateDisconnected = "disconnected"

// Build groups states (in configuration order) into clusters. Instances never reached have no
// system identifier: each gets a cluster of its own with an empty SystemIdentifier.
func Build(at time.Time, states []*pgmetrics.State) api.Snapshot {
	snap := api.Snapshot{CollectedAt: at.UTC(), Clusters: []api.Cluster{}}
	var groups [][]*pgmetrics.State
	index := map[string]int{}
	for _, st := range states {
		id := st.Info.SystemIdentifier
		if i, ok := index[id]; ok && id != "" {
			groups[i] = append(groups[i], st)
			continue
		}
		index[id] = len(groups)
		groups = append(groups, []*pgmetrics.State{st})
	}
	for _, g := range groups {
		snap.Clusters = append(snap.Clusters, buildCluster(g))
	}
	keepWithinBounds(&snap)
	return snap
}

// keepWithinBounds cuts lists longer than the API takes (api.MaxSnapshot*): the snapshot is the
// live view, and every standby, slot and subscription is in the metrics whatever it shows.
// collector.toml cannot name more instances than a snapshot holds.
func keepWithinBounds(snap *api.Snapshot) {
	for i := range snap.Clusters {
		c := &snap.Clusters[i]
		c.Standbys = c.Standbys[:min(len(c.Standbys), api.MaxSnapshotStandbys)]
		c.Slots = c.Slots[:min(len(c.Slots), api.MaxSnapshotSlots)]
		c.Subscriptions = c.Subscriptions[:min(len(c.Subscriptions), api.MaxSnapshotSubscriptions)]
	}
}

func buildCluster(members []*pgmetrics.State) api.Cluster {
	c := api.Cluster{
		SystemIdentifier: members[0].Info.SystemIdentifier,
		Instances:        []api.Instance{},
		Standbys:         []api.Standby{},
		Slots:            []api.Slot{},
		Subscriptions:    []api.Subscription{},
	}
	primary := pickPrimary(members)
	ordered := slices.Clone(members)
	// Primary first, the rest in configuration order.
	slices.SortStableFunc(ordered, func(a, b *pgmetrics.State) int {
		return cmp.Compare(rank(a, primary), rank(b, primary))
	})
	for _, st := range ordered {
		c.Instances = append(c.Instances, instance(st))
		c.Timeline = max(c.Timeline, st.Info.Timeline)
		for _, s := range st.Subscriptions {
			c.Subscriptions = append(c.Subscriptions, subscription(st.Name, s))
		}
	}
	if primary == nil {
		return c
	}
	c.Timeline = primary.Info.Timeline
	for _, s := range primary.Slots {
		c.Slots = append(c.Slots, slot(s))
	}
	c.Standbys = joinStandbys(primary, members)
	return c
}

// pickPrimary is the member that answers and is not in recovery. Two of them (split brain after a
// failover) are both listed as primaries; the one on the highest timeline is the one whose view of
// the standbys is used.
func pickPrimary(members []*pgmetrics.State) *pgmetrics.State {
	var p *pgmetrics.State
	for _, st := range members {
		if st.Up && !st.Info.InRecovery && (p == nil || st.Info.Timeline > p.Info.Timeline) {
			p = st
		}
	}
	return p
}

func rank(st, primary *pgmetrics.State) int {
	if st == primary {
		return 0
	}
	return 1
}

func instance(st *pgmetrics.State) api.Instance {
	in := api.Instance{Name: st.Name, Address: st.Address, Up: st.Up, Role: pgmetrics.RoleUnknown}
	if !st.Up {
		if st.Err != nil {
			in.Error = clip(st.Err.Error(), api.MaxInstanceErrorBytes)
		}
		return in
	}
	in.Role = st.Info.Role()
	in.ServerVersion = st.Info.VersionNum
	in.Timeline = st.Info.Timeline
	in.WALLSN = st.Info.WALLSN
	if len(st.Failures) > 0 {
		in.Error = clip(st.Failures[0].Error(), api.MaxInstanceErrorBytes)
	}
	if !st.Info.InRecovery {
		return in
	}
	if r := st.Receiver; r != nil {
		in.Receiver = &api.WALReceiver{
			Connected:        r.Connected(),
			Status:           r.Status,
			SenderHost:       r.SenderHost,
			SenderPort:       r.SenderPort,
			SlotName:         r.SlotName,
			ReceivedTimeline: r.ReceivedTimeline,
		}
		if r.LastMsgAgeSeconds != nil {
			in.Receiver.LastMsgAgeSeconds = *r.LastMsgAgeSeconds
		}
		if in.Receiver.Status == "" {
			in.Receiver.Status = "stopped"
		}
	}
	if r := st.Replay; r != nil {
		in.ReplayPaused = r.Paused
		in.ReceiveReplayLagBytes = deref(r.ReceiveReplayLagBytes)
		in.ReplayDelaySeconds = r.DelaySeconds // nil when nothing was replayed yet: unknown, not 0
		in.LastReplayAgeSeconds = r.LastReplayAgeSeconds
	}
	return in
}

// joinStandbys lists the primary's pg_stat_replication rows and attaches the monitored standby each
// one is. A standby is matched first by slot (its WAL receiver's slot_name is the slot the
// walsender holds), then by application name (the application_name of its primary_conninfo, else
// its fallback_application_name, else its cluster_name, as PostgreSQL itself picks it), each name
// used only when exactly one row carries it. A monitored standby of this cluster that no row
// matches and whose receiver is not streaming is listed as "disconnected"; one that streams but
// matches no row is taken to cascade from another standby and is not listed.
func joinStandbys(primary *pgmetrics.State, members []*pgmetrics.State) []api.Standby {
	out := make([]api.Standby, 0, len(primary.Replicas))
	for _, r := range primary.Replicas {
		out = append(out, standby(r))
	}
	matched := map[string]bool{}
	var candidates []*pgmetrics.State
	for _, st := range members {
		if st != primary && (st.Info.InRecovery || !st.Up) {
			candidates = append(candidates, st)
		}
	}
	// Slots first: they are unique on the primary.
	for _, st := range candidates {
		if st.Receiver == nil || st.Receiver.SlotName == "" {
			continue
		}
		for i := range out {
			if out[i].Instance == "" && out[i].SlotName == st.Receiver.SlotName {
				out[i].Instance = st.Name
				matched[st.Name] = true
				break
			}
		}
	}
	for _, st := range candidates {
		if matched[st.Name] {
			continue
		}
		for _, name := range applicationNames(st) {
			if i, ok := uniqueByApplicationName(out, name); ok {
				out[i].Instance = st.Name
				matched[st.Name] = true
				break
			}
		}
	}
	for _, st := range candidates {
		if matched[st.Name] || (st.Up && st.Receiver.Connected()) {
			continue
		}
		d := api.Standby{ApplicationName: st.Name, State: StateDisconnected, Instance: st.Name}
		if names := applicationNames(st); len(names) > 0 {
			d.ApplicationName = names[0]
		}
		if st.Receiver != nil {
			d.SlotName = st.Receiver.SlotName
		}
		out = append(out, d)
	}
	return out
}

func uniqueByApplicationName(out []api.Standby, name string) (int, bool) {
	found := -1
	for i := range out {
		if out[i].ApplicationName != name {
			continue
		}
		if found >= 0 {
			return 0, false
		}
		found = i
	}
	return found, found >= 0 && out[found].Instance == ""
}

// applicationNames are the names a standby's walreceiver may present to its primary, most
// specific first.
func applicationNames(st *pgmetrics.State) []string {
	var names []string
	if st.Receiver != nil && st.Receiver.Conninfo != "" {
		// pgconn parses libpq conninfo strings; unknown keywords land in RuntimeParams.
		if cc, err := pgconn.ParseConfig(st.Receiver.Conninfo); err == nil {
			for _, k := range []string{"application_name", "fallback_application_name"} {
				if v := cc.RuntimeParams[k]; v != "" {
					names = append(names, v)
				}
			}
		}
	}
	if st.Info.ClusterName != "" {
		names = append(names, st.Info.ClusterName)
	}
	return names
}

func standby(r pgmetrics.Replica) api.Standby {
	s := api.Standby{
		ApplicationName:  r.ApplicationName,
		ClientAddr:       r.ClientAddr,
		State:            r.State,
		SyncState:        r.SyncState,
		SlotName:         r.SlotName,
		SentLagBytes:     deref(r.SentLagBytes),
		WriteLagBytes:    deref(r.WriteLagBytes),
		FlushLagBytes:    deref(r.FlushLagBytes),
		ReplayLagBytes:   deref(r.ReplayLagBytes),
		WriteLagSeconds:  r.WriteLagSeconds,
		FlushLagSeconds:  r.FlushLagSeconds,
		ReplayLagSeconds: r.ReplayLagSeconds,
		ReplyAgeSeconds:  deref(r.ReplyAgeSeconds),
		BackendXminAge:   deref(r.BackendXminAge),
	}
	return s
}

func slot(s pgmetrics.Slot) api.Slot {
	return api.Slot{
		Name:                   s.Name,
		Type:                   s.Type,
		Plugin:                 s.Plugin,
		Database:               s.Database,
		Active:                 s.Active,
		RetainedBytes:          deref(s.RetainedBytes),
		ConfirmedFlushLagBytes: s.ConfirmedFlushLagBytes,
		WALStatus:              s.WALStatus,
		SafeWALSizeBytes:       s.SafeWALSizeBytes,
		Conflicting:            s.Conflicting,
		InactiveSeconds:        s.InactiveSeconds,
		XminAge:                deref(s.XminAge),
		CatalogXminAge:         deref(s.CatalogXminAge),
	}
}

func subscription(instance string, s pgmetrics.Subscription) api.Subscription {
	return api.Subscription{
		Instance:          instance,
		Name:              s.Name,
		Enabled:           s.Enabled,
		LastMsgAgeSeconds: s.LastMsgAgeSeconds,
		ApplyErrors:       s.ApplyErrors,
		SyncErrors:        s.SyncErrors,
		RelNotReady:       deref(s.RelNotReady),
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// clip cuts s to at most n bytes on a rune boundary (the API refuses longer snapshot fields).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
