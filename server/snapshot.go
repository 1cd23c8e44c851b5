package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pganalytics/pganalytics/internal/api"
)

// checkSnapshot bounds every field and list of a pushed snapshot (api.MaxSnapshot* and friends), so
// that what the live views store, serve and stream stays the size PostgreSQL can produce. The
// message names the first field at fault by its path in the push.
func checkSnapshot(sn *api.Snapshot) *httpError {
	c := snapshotChecker{}
	if len(sn.Clusters) > api.MaxSnapshotClusters {
		return c.refuse("snapshot.clusters", "%d clusters, at most %d allowed", len(sn.Clusters), api.MaxSnapshotClusters)
	}
	instances := 0
	for i := range sn.Clusters {
		cl := &sn.Clusters[i]
		at := fmt.Sprintf("snapshot.clusters[%d]", i)
		if e := c.sysid(at+".system_identifier", cl.SystemIdentifier); e != nil {
			return e
		}
		if e := c.texts(at, field{"name", cl.Name, api.MaxInstanceNameBytes}); e != nil {
			return e
		}
		if cl.Timeline < 0 {
			return c.refuse(at+".timeline", "must not be negative")
		}
		instances += len(cl.Instances)
		switch {
		case instances > api.MaxSnapshotInstances:
			return c.refuse(at+".instances", "more than %d instances in the snapshot", api.MaxSnapshotInstances)
		case len(cl.Standbys) > api.MaxSnapshotStandbys:
			return c.refuse(at+".standbys", "%d standbys, at most %d allowed", len(cl.Standbys), api.MaxSnapshotStandbys)
		case len(cl.Slots) > api.MaxSnapshotSlots:
			return c.refuse(at+".slots", "%d slots, at most %d allowed", len(cl.Slots), api.MaxSnapshotSlots)
		case len(cl.Subscriptions) > api.MaxSnapshotSubscriptions:
			return c.refuse(at+".subscriptions", "%d subscriptions, at most %d allowed", len(cl.Subscriptions), api.MaxSnapshotSubscriptions)
		}
		for j := range cl.Instances {
			if e := c.instance(fmt.Sprintf("%s.instances[%d]", at, j), &cl.Instances[j]); e != nil {
				return e
			}
		}
		for j := range cl.Standbys {
			if e := c.standby(fmt.Sprintf("%s.standbys[%d]", at, j), &cl.Standbys[j]); e != nil {
				return e
			}
		}
		for j := range cl.Slots {
			if e := c.slot(fmt.Sprintf("%s.slots[%d]", at, j), &cl.Slots[j]); e != nil {
				return e
			}
		}
		if e := c.patroni(at+".patroni", cl.Patroni); e != nil {
			return e
		}
		for j := range cl.Subscriptions {
			s := &cl.Subscriptions[j]
			at := fmt.Sprintf("%s.subscriptions[%d]", at, j)
			if e := c.texts(at, field{"instance", s.Instance, api.MaxInstanceNameBytes}, field{"name", s.Name, api.MaxIdentifierBytes}); e != nil {
				return e
			}
		}
	}
	return nil
}

// patroni bounds a cluster's Patroni view; disagreements are the server's to derive.
func (c snapshotChecker) patroni(at string, p *api.PatroniCluster) *httpError {
	if p == nil {
		return nil
	}
	if e := c.texts(at, field{"scope", p.Scope, api.MaxPatroniText}, field{"version", p.Version, api.MaxPatroniText},
		field{"leader", p.Leader, api.MaxPatroniText}, field{"reported_by", p.ReportedBy, api.MaxInstanceNameBytes}); e != nil {
		return e
	}
	switch {
	case len(p.Members) > api.MaxPatroniMembers:
		return c.refuse(at+".members", "%d members, at most %d allowed", len(p.Members), api.MaxPatroniMembers)
	case len(p.History) > api.MaxPatroniHistory:
		return c.refuse(at+".history", "%d entries, at most %d allowed (send the latest)", len(p.History), api.MaxPatroniHistory)
	case len(p.Disagreements) > 0:
		return c.refuse(at+".disagreements", "set by the server, not by a collector")
	}
	for j := range p.Members {
		if e := c.patroniMember(fmt.Sprintf("%s.members[%d]", at, j), &p.Members[j]); e != nil {
			return e
		}
	}
	for j, h := range p.History {
		at := fmt.Sprintf("%s.history[%d]", at, j)
		if e := c.texts(at, field{"lsn", h.LSN, api.MaxLSNBytes}, field{"reason", h.Reason, api.MaxPatroniText},
			field{"new_leader", h.NewLeader, api.MaxPatroniText}); e != nil {
			return e
		}
		if h.Timeline < 0 {
			return c.refuse(at+".timeline", "must not be negative")
		}
	}
	return nil
}

func (c snapshotChecker) patroniMember(at string, m *api.PatroniMember) *httpError {
	if e := c.texts(at, field{"name", m.Name, api.MaxPatroniText}, field{"role", m.Role, api.MaxStateBytes},
		field{"state", m.State, api.MaxStateBytes}, field{"host", m.Host, api.MaxHostBytes},
		field{"error", m.Error, api.MaxInstanceErrorBytes}); e != nil {
		return e
	}
	switch {
	case m.Port < 0 || m.Port > 65535:
		return c.refuse(at+".port", "%d is not a port", m.Port)
	case m.Timeline < 0:
		return c.refuse(at+".timeline", "must not be negative")
	case m.LagBytes != nil && *m.LagBytes < 0:
		return c.refuse(at+".lag_bytes", "must not be negative")
	}
	return nil
}

type snapshotChecker struct{}

// field is one string field with its bound.
type field struct {
	name  string
	value string
	max   int
}

func (snapshotChecker) refuse(path, format string, args ...any) *httpError {
	return newError(http.StatusBadRequest, codeValidation, "%s: %s", path, fmt.Sprintf(format, args...))
}

// texts checks each field's length and that PostgreSQL text can hold it (no NUL).
func (c snapshotChecker) texts(at string, fields ...field) *httpError {
	for _, f := range fields {
		switch {
		case len(f.value) > f.max:
			return c.refuse(at+"."+f.name, "longer than %d bytes", f.max)
		case strings.IndexByte(f.value, 0) >= 0:
			return c.refuse(at+"."+f.name, "contains a NUL character")
		}
	}
	return nil
}

func (c snapshotChecker) sysid(path, v string) *httpError {
	if len(v) > api.MaxSystemIdentifierDigits {
		return c.refuse(path, "longer than %d digits", api.MaxSystemIdentifierDigits)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return c.refuse(path, "must be a decimal number")
		}
	}
	return nil
}

func (c snapshotChecker) instance(at string, in *api.Instance) *httpError {
	if e := c.texts(at,
		field{"name", in.Name, api.MaxInstanceNameBytes},
		field{"address", in.Address, api.MaxAddressBytes},
		field{"error", in.Error, api.MaxInstanceErrorBytes},
		field{"role", in.Role, api.MaxStateBytes},
		field{"wal_lsn", in.WALLSN, api.MaxLSNBytes},
		field{"upstream", in.Upstream, api.MaxInstanceNameBytes},
	); e != nil {
		return e
	}
	if in.Timeline < 0 || in.ServerVersion < 0 {
		return c.refuse(at, "timeline and server_version must not be negative")
	}
	if in.Patroni != nil {
		if e := c.patroniMember(at+".patroni", in.Patroni); e != nil {
			return e
		}
	}
	if r := in.Receiver; r != nil {
		if e := c.texts(at+".wal_receiver",
			field{"status", r.Status, api.MaxStateBytes},
			field{"sender_host", r.SenderHost, api.MaxHostBytes},
			field{"slot_name", r.SlotName, api.MaxIdentifierBytes},
			field{"application_name", r.ApplicationName, api.MaxIdentifierBytes},
		); e != nil {
			return e
		}
		if r.SenderPort < 0 || r.SenderPort > 65535 {
			return c.refuse(at+".wal_receiver.sender_port", "%d is not a port", r.SenderPort)
		}
	}
	return nil
}

func (c snapshotChecker) standby(at string, s *api.Standby) *httpError {
	return c.texts(at,
		field{"application_name", s.ApplicationName, api.MaxIdentifierBytes},
		field{"client_addr", s.ClientAddr, api.MaxHostBytes},
		field{"state", s.State, api.MaxStateBytes},
		field{"sync_state", s.SyncState, api.MaxStateBytes},
		field{"slot_name", s.SlotName, api.MaxIdentifierBytes},
		field{"instance", s.Instance, api.MaxInstanceNameBytes},
		field{"upstream", s.Upstream, api.MaxInstanceNameBytes},
	)
}

func (c snapshotChecker) slot(at string, s *api.Slot) *httpError {
	return c.texts(at,
		field{"instance", s.Instance, api.MaxInstanceNameBytes},
		field{"name", s.Name, api.MaxIdentifierBytes},
		field{"type", s.Type, api.MaxStateBytes},
		field{"plugin", s.Plugin, api.MaxIdentifierBytes},
		field{"database", s.Database, api.MaxIdentifierBytes},
		field{"wal_status", s.WALStatus, api.MaxStateBytes},
	)
}
