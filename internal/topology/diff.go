package topology

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Diff names the events between two consecutive views of one cluster, detected at at. A member
// that is down (or whose collector stopped reporting) in either view gives only its unreachable or
// reachable event: what it held then is not known, so its slots and standbys are not compared.
func Diff(prev, next *api.ClusterView, at time.Time) []api.Event {
	d := differ{prev: prev, next: next, at: at.UTC()}
	d.primaries()
	d.members()
	d.standbys()
	d.slots()
	d.patroni()
	return d.events
}

type differ struct {
	prev, next *api.ClusterView
	at         time.Time
	events     []api.Event
}

func (d *differ) add(kind, severity, instance, msg string, details map[string]any) {
	d.events = append(d.events, api.Event{
		At: d.at, Kind: kind, Severity: severity, SystemIdentifier: d.next.SystemIdentifier,
		Cluster: d.next.Name, Instance: instance, Message: msg, Details: details,
	})
}

// Primaries lists the members that answer as a primary, in member order.
func Primaries(c *api.Cluster) []string {
	var out []string
	for i := range c.Instances {
		if isPrimary(&c.Instances[i]) {
			out = append(out, c.Instances[i].Name)
		}
	}
	return out
}

func member(c *api.Cluster, name string) *api.Instance {
	for i := range c.Instances {
		if c.Instances[i].Name == name {
			return &c.Instances[i]
		}
	}
	return nil
}

// upInBoth says whether the member answered in both views.
func (d *differ) upInBoth(name string) bool {
	p, n := member(&d.prev.Cluster, name), member(&d.next.Cluster, name)
	return p != nil && n != nil && p.Up && n.Up
}

func (d *differ) primaries() {
	was, is := Primaries(&d.prev.Cluster), Primaries(&d.next.Cluster)
	for _, name := range is {
		if slices.Contains(was, name) {
			continue
		}
		old := member(&d.prev.Cluster, name)
		if old == nil || !old.Up || old.Role != roleStandby {
			continue // not seen as a standby before: a new member, or one back after being down
		}
		n := member(&d.next.Cluster, name)
		details := map[string]any{"new_primary": name, "old_timeline": old.Timeline, "new_timeline": n.Timeline}
		msg := fmt.Sprintf("%s promoted (timeline %d → %d)", name, old.Timeline, n.Timeline)
		if len(was) == 1 {
			details["old_primary"] = was[0]
			msg = fmt.Sprintf("%s promoted, replacing %s (timeline %d → %d)", name, was[0], old.Timeline, n.Timeline)
		}
		d.add(api.EventPromotion, api.SeverityCritical, name, msg, details)
	}
	switch {
	case len(is) > 1 && len(was) <= 1:
		d.add(api.EventSplitBrain, api.SeverityCritical, "",
			fmt.Sprintf("split brain: %d members answer as primary (%s)", len(is), strings.Join(is, ", ")),
			map[string]any{"primaries": is})
	case len(is) <= 1 && len(was) > 1:
		d.add(api.EventSplitBrainResolved, api.SeverityInfo, "", "split brain over: "+primaryText(is),
			map[string]any{"primaries": nonNil(is), "old_primaries": was})
	}
	if len(is) == 0 && len(was) > 0 {
		d.add(api.EventNoPrimary, api.SeverityCritical, "", "no member answers as primary (was "+strings.Join(was, ", ")+")",
			map[string]any{"old_primaries": was})
	}
}

func primaryText(p []string) string {
	if len(p) == 0 {
		return "no primary"
	}
	return "primary " + strings.Join(p, ", ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (d *differ) members() {
	for i := range d.next.Instances {
		n := &d.next.Instances[i]
		p := member(&d.prev.Cluster, n.Name)
		if p == nil {
			continue
		}
		switch {
		case p.Up && !n.Up:
			msg := n.Name + " unreachable"
			if n.Error != "" {
				msg += ": " + n.Error
			}
			d.add(api.EventInstanceUnreachable, api.SeverityCritical, n.Name, msg, map[string]any{"error": n.Error, "role": p.Role})
			continue
		case !p.Up && n.Up:
			d.add(api.EventInstanceReachable, api.SeverityInfo, n.Name, n.Name+" answers again as "+n.Role, map[string]any{"role": n.Role})
		}
		if !p.Up || !n.Up {
			continue
		}
		if p.StartedAt != nil && n.StartedAt != nil && n.StartedAt.After(*p.StartedAt) {
			d.add(api.EventInstanceRestarted, api.SeverityWarning, n.Name, n.Name+" restarted at "+n.StartedAt.UTC().Format(time.RFC3339),
				map[string]any{"old_started_at": p.StartedAt.UTC(), "new_started_at": n.StartedAt.UTC()})
		}
		promoted := p.Role == roleStandby && n.Role == rolePrimary // its promotion event has the timelines
		if p.Timeline > 0 && n.Timeline > 0 && p.Timeline != n.Timeline && !promoted {
			d.add(api.EventTimelineSwitch, api.SeverityWarning, n.Name,
				fmt.Sprintf("%s switched timeline %d → %d", n.Name, p.Timeline, n.Timeline),
				map[string]any{"old_timeline": p.Timeline, "new_timeline": n.Timeline})
		}
	}
}

// link is where a standby streams from and with what sync state.
type link struct {
	upstream, syncState string
}

// links maps each standby (monitored by name, else by application name and address) to its link,
// over the rows of members that answered in both views.
func (d *differ) links(c *api.Cluster) map[string]link {
	out := map[string]link{}
	for _, sb := range c.Standbys {
		if sb.State == StateDisconnected || !d.upInBoth(sb.Upstream) {
			continue
		}
		key := sb.Instance
		if key == "" {
			key = "app:" + sb.ApplicationName + "@" + sb.ClientAddr
		}
		out[key] = link{sb.Upstream, sb.SyncState}
	}
	// A monitored standby matched to no row still says where it streams from.
	for _, in := range c.Instances {
		if _, ok := out[in.Name]; !ok && in.Upstream != "" && d.upInBoth(in.Upstream) {
			out[in.Name] = link{upstream: in.Upstream}
		}
	}
	return out
}

func (d *differ) standbys() {
	was, is := d.links(&d.prev.Cluster), d.links(&d.next.Cluster)
	keys := make([]string, 0, len(was)+len(is))
	for k := range is {
		keys = append(keys, k)
	}
	for k := range was {
		if _, ok := is[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p, hadP := was[k]
		n, hasN := is[k]
		name, instance := k, k
		if strings.HasPrefix(k, "app:") {
			name, instance = strings.TrimPrefix(k, "app:"), ""
		} else if in := member(&d.next.Cluster, k); in != nil && (!in.Up || in.Role == rolePrimary) {
			continue // its own unreachable or promotion event says it
		}
		switch {
		case !hadP && hasN:
			d.add(api.EventStandbyAttached, api.SeverityInfo, instance, name+" streams from "+n.upstream, map[string]any{"upstream": n.upstream})
		case hadP && !hasN:
			d.add(api.EventStandbyDetached, api.SeverityWarning, instance, name+" stopped streaming from "+p.upstream, map[string]any{"upstream": p.upstream})
		case p.upstream != n.upstream:
			d.add(api.EventStandbyRepointed, api.SeverityWarning, instance, name+" now streams from "+n.upstream+" (was "+p.upstream+")",
				map[string]any{"old_upstream": p.upstream, "new_upstream": n.upstream})
		case p.syncState != "" && n.syncState != "" && p.syncState != n.syncState:
			d.add(api.EventSyncStateChanged, api.SeverityWarning, instance, name+" sync state "+p.syncState+" → "+n.syncState,
				map[string]any{"upstream": n.upstream, "old_sync_state": p.syncState, "new_sync_state": n.syncState})
		}
	}
}

func (d *differ) slots() {
	index := func(c *api.Cluster) map[string]api.Slot {
		out := map[string]api.Slot{}
		for _, s := range c.Slots {
			if d.upInBoth(s.Instance) {
				out[s.Instance+"\x00"+s.Name] = s
			}
		}
		return out
	}
	was, is := index(&d.prev.Cluster), index(&d.next.Cluster)
	for _, s := range d.next.Slots {
		p, ok := was[s.Instance+"\x00"+s.Name]
		switch {
		case !d.upInBoth(s.Instance):
		case !ok:
			d.add(api.EventSlotCreated, api.SeverityInfo, s.Instance, fmt.Sprintf("%s slot %s created on %s", s.Type, s.Name, s.Instance),
				map[string]any{"slot": s.Name, "type": s.Type})
		case s.WALStatus == "lost" && p.WALStatus != "lost":
			d.add(api.EventSlotInvalidated, api.SeverityCritical, s.Instance,
				fmt.Sprintf("slot %s on %s invalidated: the WAL it needs is gone (wal_status lost)", s.Name, s.Instance),
				map[string]any{"slot": s.Name, "type": s.Type, "old_wal_status": p.WALStatus})
		}
	}
	for _, s := range d.prev.Slots {
		if _, ok := is[s.Instance+"\x00"+s.Name]; !ok && d.upInBoth(s.Instance) {
			d.add(api.EventSlotDropped, api.SeverityWarning, s.Instance, fmt.Sprintf("slot %s dropped on %s", s.Name, s.Instance),
				map[string]any{"slot": s.Name, "type": s.Type})
		}
	}
}

// Signature is the cluster's shape without its moving figures (lags, LSNs, ages): two views with
// the same signature differ only in those. The server stores a history row when it changes.
func Signature(c *api.ClusterView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%t\n", c.Name, c.Timeline, c.Split)
	for _, in := range c.Instances {
		started := ""
		if in.StartedAt != nil {
			started = in.StartedAt.UTC().Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&b, "i|%s|%s|%t|%s|%d|%s|%s|%t|%t\n", in.Name, in.Address, in.Up, in.Role, in.Timeline, in.Upstream, started,
			in.Receiver != nil && in.Receiver.Connected, in.Patroni != nil && in.Patroni.Error != "")
	}
	for _, s := range c.Standbys {
		fmt.Fprintf(&b, "r|%s|%s|%s|%s|%s|%s\n", s.Upstream, s.ApplicationName, s.Instance, s.State, s.SyncState, s.SlotName)
	}
	for _, s := range c.Slots {
		fmt.Fprintf(&b, "s|%s|%s|%t|%s\n", s.Instance, s.Name, s.Active, s.WALStatus)
	}
	for _, s := range c.Subscriptions {
		fmt.Fprintf(&b, "u|%s|%s|%t\n", s.Instance, s.Name, s.Enabled)
	}
	b.WriteString(patroniSignature(c.Patroni))
	return b.String()
}
