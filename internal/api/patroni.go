package api

import "time"

// PatroniMember is one member as Patroni sees it (an entry of its /cluster, or, on an instance, what
// that member's own Patroni REST API answered).
type PatroniMember struct {
	Name string `json:"name"` // Patroni's member name
	// Role is Patroni's: leader, replica, sync_standby, standby_leader (a standby cluster's leader).
	Role  string `json:"role,omitempty"`
	State string `json:"state,omitempty"` // running, streaming, stopped, starting, crashed, start failed, ...
	// Host and Port are the PostgreSQL address Patroni publishes for the member.
	Host           string `json:"host,omitempty"`
	Port           int    `json:"port,omitempty"`
	Timeline       int64  `json:"timeline,omitempty"`
	LagBytes       *int64 `json:"lag_bytes,omitempty"` // behind the leader, as Patroni measures it; nil: leader or unknown
	PendingRestart bool   `json:"pending_restart,omitempty"`
	// Error is set on an instance whose Patroni REST API did not answer; the rest is then empty.
	Error string `json:"error,omitempty"`
}

// PatroniSwitch is one entry of Patroni's /history: the timeline that ended, where, why and when,
// and the member that became leader.
type PatroniSwitch struct {
	Timeline  int64      `json:"timeline"`
	LSN       string     `json:"lsn,omitempty"` // where the timeline ended, XXX/XXX
	Reason    string     `json:"reason,omitempty"`
	At        *time.Time `json:"at,omitempty"`
	NewLeader string     `json:"new_leader,omitempty"`
}

// PatroniCluster is Patroni's view of a cluster, read by the collector from a member's REST API
// (the leader's when it answers), with where it disagrees with what PostgreSQL itself says.
type PatroniCluster struct {
	Scope      string          `json:"scope"`
	Version    string          `json:"version,omitempty"` // Patroni's version
	Leader     string          `json:"leader,omitempty"`  // the member holding the leader lock; empty: none
	Paused     bool            `json:"paused,omitempty"`  // maintenance mode: Patroni does not fail over
	ReportedBy string          `json:"reported_by"`       // the [[postgres]] name whose Patroni answered
	Members    []PatroniMember `json:"members"`
	History    []PatroniSwitch `json:"history,omitempty"` // oldest first, the latest MaxPatroniHistory
	// Disagreements are set by the topology linking, never sent by a collector.
	Disagreements []PatroniDisagreement `json:"disagreements,omitempty"`
}

// PatroniDisagreement is one place where Patroni's view and PostgreSQL's differ.
type PatroniDisagreement struct {
	Instance string `json:"instance,omitempty"` // the [[postgres]] name; empty for the cluster as a whole
	Code     string `json:"code"`               // one of the Patroni* disagreement codes
	Message  string `json:"message"`
}

// Disagreement codes.
const (
	PatroniLeaderInRecovery = "leader_in_recovery" // Patroni's leader is a standby for PostgreSQL
	PatroniPrimaryNotLeader = "primary_not_leader" // a PostgreSQL primary Patroni does not call leader
	PatroniRunningButDown   = "running_but_down"   // Patroni says running, PostgreSQL does not answer
	PatroniStoppedButUp     = "stopped_but_up"     // Patroni says not running, PostgreSQL answers
	PatroniNoLeader         = "no_leader"          // no leader lock while PostgreSQL has a primary
)

// Patroni bounds in a pushed snapshot.
const (
	MaxPatroniMembers = 64
	MaxPatroniHistory = 32  // the latest entries of /history
	MaxPatroniText    = 256 // member names, scope, version, URL hosts, history reasons
)
