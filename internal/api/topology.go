package api

import "time"

// ClusterView is one cluster as the server sees it from every collector that watches a member of it:
// the members merged (one collector per instance, or one for several), each standby placed under the
// upstream it streams from.
type ClusterView struct {
	Cluster
	// Collectors are the ids of the collectors whose latest snapshot has a member of the cluster.
	Collectors []string  `json:"collectors"`
	UpdatedAt  time.Time `json:"updated_at"` // the newest of those snapshots' collection times
}

// Event kinds: what the server detects by comparing consecutive cluster views, and collector
// lifecycle.
const (
	EventPromotion           = "promotion"            // a standby became the primary (old and new primary and timeline)
	EventTimelineSwitch      = "timeline_switch"      // a member's timeline changed
	EventStandbyAttached     = "standby_attached"     // a standby started streaming from an upstream
	EventStandbyDetached     = "standby_detached"     // a standby stopped streaming from its upstream
	EventStandbyRepointed    = "standby_repointed"    // a standby streams from a different upstream
	EventSyncStateChanged    = "sync_state_changed"   // a standby's sync_state changed (async, potential, sync, quorum)
	EventSlotCreated         = "slot_created"         // a replication slot appeared
	EventSlotDropped         = "slot_dropped"         // a replication slot disappeared
	EventSlotInvalidated     = "slot_invalidated"     // a slot's wal_status became lost
	EventInstanceRestarted   = "instance_restarted"   // pg_postmaster_start_time() moved on
	EventInstanceUnreachable = "instance_unreachable" // a member stopped answering (or its collector stopped reporting)
	EventInstanceReachable   = "instance_reachable"   // it answers again
	EventSplitBrain          = "split_brain"          // more than one member answers as a primary
	EventSplitBrainResolved  = "split_brain_resolved" // one primary again
	EventNoPrimary           = "no_primary"           // no member answers as a primary
	EventCollectorRegistered = "collector_registered"
	EventCollectorDeleted    = "collector_deleted"

	EventPatroniLeaderChanged  = "patroni_leader_changed"  // another member holds Patroni's leader lock (old and new leader, the /history reason)
	EventPatroniPaused         = "patroni_paused"          // maintenance mode on: Patroni will not fail over
	EventPatroniResumed        = "patroni_resumed"         // maintenance mode off
	EventPatroniPendingRestart = "patroni_pending_restart" // a member needs a restart for a changed setting
	EventPatroniUnreachable    = "patroni_unreachable"     // a member's Patroni REST API stopped answering the collector
	EventPatroniReachable      = "patroni_reachable"       // it answers again
	EventPatroniDisagreement   = "patroni_disagreement"    // Patroni's view and PostgreSQL's differ (details: code)
	EventPatroniAgreement      = "patroni_agreement"       // that disagreement is gone
)

// EventKinds lists every kind, in the order above.
func EventKinds() []string {
	return []string{EventPromotion, EventTimelineSwitch, EventStandbyAttached, EventStandbyDetached,
		EventStandbyRepointed, EventSyncStateChanged, EventSlotCreated, EventSlotDropped, EventSlotInvalidated,
		EventInstanceRestarted, EventInstanceUnreachable, EventInstanceReachable, EventSplitBrain,
		EventSplitBrainResolved, EventNoPrimary, EventCollectorRegistered, EventCollectorDeleted,
		EventPatroniLeaderChanged, EventPatroniPaused, EventPatroniResumed, EventPatroniPendingRestart,
		EventPatroniUnreachable, EventPatroniReachable, EventPatroniDisagreement, EventPatroniAgreement}
}

// Event severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Event is one replication or lifecycle event. Cluster and Instance are empty where they do not
// apply (collector events have neither).
type Event struct {
	ID               int64     `json:"id"`
	At               time.Time `json:"at"`
	Kind             string    `json:"kind"`
	Severity         string    `json:"severity"`
	SystemIdentifier string    `json:"system_identifier,omitempty"`
	Cluster          string    `json:"cluster,omitempty"` // the cluster's name
	Instance         string    `json:"instance,omitempty"`
	Message          string    `json:"message"`
	// Details name what changed: old_primary, new_primary, old_timeline, new_timeline, upstream,
	// old_upstream, new_upstream, old_sync_state, new_sync_state, slot, primaries, collector_id, ...
	Details map[string]any `json:"details,omitempty"`
}

// EventsResponse is GET /api/v1/events: newest first. NextCursor, when set, is the `cursor` that
// fetches the next (older) page.
type EventsResponse struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ClustersResponse is GET /api/v1/clusters: every cluster's current view, by name.
type ClustersResponse struct {
	Clusters []ClusterView `json:"clusters"`
}

// PrimaryPeriod is one stretch of time with the same primaries and timeline. Until is nil for the
// period still running. Primaries is empty when the cluster had none, and holds several in a split
// brain.
type PrimaryPeriod struct {
	From      time.Time  `json:"from"`
	Until     *time.Time `json:"until,omitempty"`
	Primaries []string   `json:"primaries"`
	Timeline  int64      `json:"timeline"`
}

// ClusterHistory is GET /api/v1/clusters/{name}/history: who was primary when, oldest first, with
// the events of the window that changed it.
type ClusterHistory struct {
	Cluster          string          `json:"cluster"`
	SystemIdentifier string          `json:"system_identifier"`
	Since            time.Time       `json:"since"`
	Until            time.Time       `json:"until"`
	Periods          []PrimaryPeriod `json:"periods"`
}
