package api

import "time"

// Snapshot is the structured replication state a collector sends with every push: its monitored
// instances grouped into clusters by system_identifier, with each standby's own view joined to its
// primary's view of it.
type Snapshot struct {
	CollectedAt time.Time `json:"collected_at"`
	Clusters    []Cluster `json:"clusters"`
}

// Cluster is one physical replication cluster (one system_identifier).
type Cluster struct {
	SystemIdentifier string `json:"system_identifier"`
	// Name is the cluster name set in collector.toml ([[postgres]] cluster); empty when none is set.
	// The server's cluster views always carry one (see ClusterView).
	Name     string `json:"name,omitempty"`
	Timeline int64  `json:"timeline"` // the primary's; with several primaries, the highest
	// Split is true when more than one member answers as a primary (split brain).
	Split         bool           `json:"split,omitempty"`
	Instances     []Instance     `json:"instances"`     // every monitored member: primaries first, then each standby after its upstream
	Standbys      []Standby      `json:"standbys"`      // every pg_stat_replication row of every member (Upstream says whose), joined with the standby's own view
	Slots         []Slot         `json:"slots"`         // every member's replication slots (Instance says whose)
	Subscriptions []Subscription `json:"subscriptions"` // logical subscriptions on any member
	// Patroni is Patroni's view of the cluster, when a member names its Patroni REST API.
	Patroni *PatroniCluster `json:"patroni,omitempty"`
}

// Instance is one monitored PostgreSQL server.
type Instance struct {
	Name          string `json:"name"`    // collector.toml [[postgres]] name
	Address       string `json:"address"` // host:port
	Up            bool   `json:"up"`
	Error         string `json:"error,omitempty"`
	Role          string `json:"role"` // primary | standby | unknown
	ServerVersion int    `json:"server_version"`
	Timeline      int64  `json:"timeline"`
	WALLSN        string `json:"wal_lsn,omitempty"` // current (primary) or last replayed (standby)
	// StartedAt is pg_postmaster_start_time(): a later value than before means the server restarted.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Standby-only fields.
	Receiver *WALReceiver `json:"wal_receiver,omitempty"`
	// Upstream is the monitored member this standby streams from, as matched from its WAL receiver's
	// sender host and port and the upstream's pg_stat_replication row; empty when not known.
	Upstream         string `json:"upstream,omitempty"`
	UpstreamLagBytes *int64 `json:"upstream_lag_bytes,omitempty"` // replay lag as the upstream reports it
	// PrimaryLagBytes is how far this standby's replay is behind the primary's current WAL position
	// (only with exactly one primary; the two positions are read a moment apart).
	PrimaryLagBytes       *int64   `json:"primary_lag_bytes,omitempty"`
	ReplayPaused          bool     `json:"replay_paused,omitempty"`
	ReceiveReplayLagBytes int64    `json:"receive_replay_lag_bytes,omitempty"`
	ReplayDelaySeconds    *float64 `json:"replay_delay_seconds,omitempty"` // nil: unknown (nothing replayed since start)
	LastReplayAgeSeconds  *float64 `json:"last_replay_age_seconds,omitempty"`
	// Patroni is this member as its own Patroni REST API describes it (when configured).
	Patroni *PatroniMember `json:"patroni,omitempty"`
}

// WALReceiver is a standby's pg_stat_wal_receiver row.
type WALReceiver struct {
	Connected  bool   `json:"connected"`
	Status     string `json:"status"`
	SenderHost string `json:"sender_host,omitempty"`
	SenderPort int    `json:"sender_port,omitempty"`
	SlotName   string `json:"slot_name,omitempty"`
	// ApplicationName is the name this standby presents to its upstream (primary_conninfo's
	// application_name, else cluster_name, else "walreceiver"): its pg_stat_replication row's.
	ApplicationName   string  `json:"application_name,omitempty"`
	ReceivedTimeline  int64   `json:"received_timeline"`
	LastMsgAgeSeconds float64 `json:"last_msg_age_seconds"`
}

// Standby is one pg_stat_replication row of a member (a primary, or a standby that cascades), joined
// (when the standby is monitored) with the standby's own instance name and view.
type Standby struct {
	Upstream         string  `json:"upstream,omitempty"` // the member whose row this is; empty on a "disconnected" entry
	ApplicationName  string  `json:"application_name"`
	ClientAddr       string  `json:"client_addr,omitempty"`
	State            string  `json:"state"`      // streaming, catchup, startup, backup, stopping, or "disconnected"
	SyncState        string  `json:"sync_state"` // async, potential, sync, quorum
	SlotName         string  `json:"slot_name,omitempty"`
	SentLagBytes     int64   `json:"sent_lag_bytes"`
	WriteLagBytes    int64   `json:"write_lag_bytes"`
	FlushLagBytes    int64   `json:"flush_lag_bytes"`
	ReplayLagBytes   int64   `json:"replay_lag_bytes"`
	WriteLagSeconds  float64 `json:"write_lag_seconds"`
	FlushLagSeconds  float64 `json:"flush_lag_seconds"`
	ReplayLagSeconds float64 `json:"replay_lag_seconds"`
	ReplyAgeSeconds  float64 `json:"reply_age_seconds"`
	BackendXminAge   int64   `json:"backend_xmin_age,omitempty"`
	Instance         string  `json:"instance,omitempty"` // the standby's own [[postgres]] name, when monitored
}

// Slot is one replication slot.
type Slot struct {
	Instance               string   `json:"instance,omitempty"` // the member that holds it
	Name                   string   `json:"name"`
	Type                   string   `json:"type"` // physical | logical
	Plugin                 string   `json:"plugin,omitempty"`
	Database               string   `json:"database,omitempty"`
	Active                 bool     `json:"active"`
	RetainedBytes          int64    `json:"retained_bytes"`
	ConfirmedFlushLagBytes *int64   `json:"confirmed_flush_lag_bytes,omitempty"`
	WALStatus              string   `json:"wal_status,omitempty"` // reserved | extended | unreserved | lost
	SafeWALSizeBytes       *int64   `json:"safe_wal_size_bytes,omitempty"`
	Conflicting            *bool    `json:"conflicting,omitempty"`      // 16+
	InactiveSeconds        *float64 `json:"inactive_seconds,omitempty"` // 17+
	XminAge                int64    `json:"xmin_age,omitempty"`
	CatalogXminAge         int64    `json:"catalog_xmin_age,omitempty"`
}

// Subscription is one logical subscription on a subscriber.
type Subscription struct {
	Instance          string   `json:"instance"`
	Name              string   `json:"name"`
	Enabled           bool     `json:"enabled"`
	LastMsgAgeSeconds *float64 `json:"last_msg_age_seconds,omitempty"`
	ApplyErrors       int64    `json:"apply_errors"`
	SyncErrors        int64    `json:"sync_errors"`
	RelNotReady       int64    `json:"rel_not_ready"`
}

// CollectorTopology is one collector's latest snapshot as the live views serve it.
type CollectorTopology struct {
	CollectorID   string    `json:"collector_id"`
	CollectorName string    `json:"collector_name"`
	ReceivedAt    time.Time `json:"received_at"`
	Stale         bool      `json:"stale"` // no push within two intervals
	Snapshot      Snapshot  `json:"snapshot"`
}

// ReplicationResponse is GET /api/v1/replication; each SSE event on /api/v1/replication/stream
// (event: topology) carries one CollectorTopology as its data.
type ReplicationResponse struct {
	// At is set when the answer is the topology as it was at that time (?at=); Collectors is then
	// empty and Clusters come from the stored history.
	At         *time.Time          `json:"at,omitempty"`
	Collectors []CollectorTopology `json:"collectors"`
	Clusters   []ClusterView       `json:"clusters"` // every collector's view merged, one per cluster
}

// Snapshot bounds. The server refuses a push whose snapshot breaks one (400 naming the field), so a
// collector keeps within them: names are PostgreSQL identifiers (NAMEDATALEN-1 bytes), the rest is
// sized from what PostgreSQL reports, and the counts from what one collector can watch.
const (
	MaxSnapshotBytes          = 2 << 20 // the snapshot's JSON as pushed
	MaxSnapshotClusters       = 256
	MaxSnapshotInstances      = 256 // over all clusters
	MaxSnapshotStandbys       = 256 // per cluster
	MaxSnapshotSlots          = 512 // per cluster
	MaxSnapshotSubscriptions  = 512 // per cluster
	MaxIdentifierBytes        = 63  // application, slot, plugin, database and subscription names
	MaxSystemIdentifierDigits = 20  // a uint64 in decimal
	MaxInstanceNameBytes      = 63  // collector.toml [[postgres]] name
	MaxHostBytes              = 255 // a DNS name, an IP address or a socket directory
	MaxAddressBytes           = MaxHostBytes + 6
	MaxLSNBytes               = 17 // XXXXXXXX/XXXXXXXX
	MaxStateBytes             = 32 // role, walsender/receiver states, sync state, slot type and wal_status
	MaxInstanceErrorBytes     = 1024
)
