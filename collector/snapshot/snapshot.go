// Package snapshot turns the per-instance collections of one cycle into the replication topology a
// person means: instances grouped into clusters by system_identifier, each standby's own view (WAL
// receiver, replay delay) joined with its primary's view of it (pg_stat_replication row, slot).
package snapshot

import (
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pganalytics/pganalytics/collector/pgmetrics"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
)

// Build groups states (in configuration order) into clusters. Instances never reached have no
// system identifier: each gets a cluster of its own with an empty SystemIdentifier.
func Build(at time.Time, states []*pgmetrics.State) api.Snapshot {
	snap := api.Snapshot{CollectedAt: at.UTC(), Clusters: []api.Cluster{}}
	var groups [][]*pgmetrics.State
	index := map[string]int{}
	for _, st := range states {
		id := st.Info.SystemIdentifier
		if id == "" && st.Patroni != nil {
			id = st.Patroni.SystemIdentifier // never reached, but its Patroni says which cluster
		}
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
		SystemIdentifier: systemIdentifier(members[0]),
		Instances:        []api.Instance{},
		Standbys:         []api.Standby{},
		Slots:            []api.Slot{},
		Subscriptions:    []api.Subscription{},
	}
	for _, st := range members {
		if st.Cluster != "" && (c.Name == "" || st.Cluster < c.Name) {
			c.Name = st.Cluster
		}
		c.Instances = append(c.Instances, instance(st))
		c.Patroni = betterPatroni(c.Patroni, st)
		if !st.Up {
			continue
		}
		// Every member's own rows: a primary's standbys, and a standby's cascading ones.
		for _, r := range st.Replicas {
			sb := standby(r)
			sb.Upstream = st.Name
			c.Standbys = append(c.Standbys, sb)
		}
		for _, s := range st.Slots {
			sl := slot(s)
			sl.Instance = st.Name
			c.Slots = append(c.Slots, sl)
		}
		for _, s := range st.Subscriptions {
			c.Subscriptions = append(c.Subscriptions, subscription(st.Name, s))
		}
	}
	topology.Link(&c)
	return c
}

func systemIdentifier(st *pgmetrics.State) string {
	if st.Info.SystemIdentifier == "" && st.Patroni != nil {
		return st.Patroni.SystemIdentifier
	}
	return st.Info.SystemIdentifier
}

// betterPatroni picks the cluster's Patroni view: the leader's own report when it answered, else
// the first member's that did.
func betterPatroni(cur *api.PatroniCluster, st *pgmetrics.State) *api.PatroniCluster {
	r := st.Patroni
	if r == nil || (cur != nil && (r.Self.Name == "" || r.Self.Name != r.Cluster.Leader)) {
		return cur
	}
	pc := r.Cluster
	pc.ReportedBy = st.Name
	pc.Members = slices.Clone(pc.Members)
	return &pc
}

// patroniMember is the member as its own Patroni describes it.
func patroniMember(st *pgmetrics.State) *api.PatroniMember {
	switch {
	case st.Patroni != nil:
		m := st.Patroni.Self
		return &m
	case st.PatroniErr != nil:
		return &api.PatroniMember{Error: clip(st.PatroniErr.Error(), api.MaxInstanceErrorBytes)}
	}
	return nil
}

func instance(st *pgmetrics.State) api.Instance {
	in := api.Instance{Name: st.Name, Address: st.Address, Up: st.Up, Role: pgmetrics.RoleUnknown,
		Patroni: patroniMember(st)}
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
	if !st.Info.StartedAt.IsZero() {
		started := st.Info.StartedAt.UTC()
		in.StartedAt = &started
	}
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
			ApplicationName:  applicationName(st),
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

// applicationName is the name a standby's walreceiver presents to its upstream, as PostgreSQL picks
// it: primary_conninfo's application_name, else its fallback_application_name, else cluster_name,
// else "walreceiver".
func applicationName(st *pgmetrics.State) string {
	if st.Receiver != nil && st.Receiver.Conninfo != "" {
		// pgconn parses libpq conninfo strings; unknown keywords land in RuntimeParams.
		if cc, err := pgconn.ParseConfig(st.Receiver.Conninfo); err == nil {
			for _, k := range []string{"application_name", "fallback_application_name"} {
				if v := cc.RuntimeParams[k]; v != "" {
					return v
				}
			}
		}
	}
	if st.Info.ClusterName != "" {
		return st.Info.ClusterName
	}
	return "walreceiver"
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
