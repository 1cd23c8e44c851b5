package topology

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Merge joins every collector's latest snapshot into one view per cluster (system identifier),
// sorted by name. A member watched by several collectors (same name and address) is taken from the
// freshest snapshot. Members whose collector is stale are shown down: nothing is known of them now.
// names holds the names the server assigned before (system identifier → name), so that a cluster
// keeps its name across failovers; a name set in collector.toml wins, then names, then the
// primary's instance name, then the system identifier. Members never reached have no system
// identifier and stay out of the merged views (the per-collector views list them).
func Merge(tops []api.CollectorTopology, names map[string]string) []api.ClusterView {
	type acc struct {
		view       api.ClusterView
		configured string
		from       map[string]source // member key → snapshot it came from
		patroniAt  time.Time
		byLeader   bool // the Patroni view came from the leader's own REST API
	}
	clusters := map[string]*acc{}
	var order []string
	for _, t := range tops {
		for _, cl := range t.Snapshot.Clusters {
			if cl.SystemIdentifier == "" {
				continue
			}
			a := clusters[cl.SystemIdentifier]
			if a == nil {
				a = &acc{view: api.ClusterView{Cluster: api.Cluster{SystemIdentifier: cl.SystemIdentifier,
					Instances: []api.Instance{}, Standbys: []api.Standby{}, Slots: []api.Slot{}, Subscriptions: []api.Subscription{}}},
					from: map[string]source{}}
				clusters[cl.SystemIdentifier] = a
				order = append(order, cl.SystemIdentifier)
			}
			if cl.Name != "" && (a.configured == "" || cl.Name < a.configured) {
				a.configured = cl.Name
			}
			if !slices.Contains(a.view.Collectors, t.CollectorID) {
				a.view.Collectors = append(a.view.Collectors, t.CollectorID)
			}
			if t.Snapshot.CollectedAt.After(a.view.UpdatedAt) {
				a.view.UpdatedAt = t.Snapshot.CollectedAt
			}
			if cl.Patroni != nil && !t.Stale {
				byLeader := reportedByLeader(&cl)
				if a.view.Patroni == nil || (byLeader && !a.byLeader) || (byLeader == a.byLeader && t.Snapshot.CollectedAt.After(a.patroniAt)) {
					pc := *cl.Patroni
					a.view.Patroni, a.patroniAt, a.byLeader = &pc, t.Snapshot.CollectedAt, byLeader
				}
			}
			fill := reportingPrimary(&cl)
			for _, in := range cl.Instances {
				key := in.Name + "\x00" + in.Address
				if t.Stale {
					in = staleInstance(in, t.CollectorName)
				}
				src := source{at: t.Snapshot.CollectedAt, stale: t.Stale}
				if prev, ok := a.from[key]; ok {
					if !src.replaces(prev) {
						continue
					}
					removeMember(&a.view.Cluster, in.Name)
				}
				a.from[key] = src
				a.view.Instances = append(a.view.Instances, in)
				if t.Stale {
					continue
				}
				for _, sb := range cl.Standbys {
					if sb.State == StateDisconnected {
						continue
					}
					if sb.Upstream == "" {
						sb.Upstream = fill // a collector from before upstreams: rows are its primary's
					}
					if sb.Upstream == in.Name {
						a.view.Standbys = append(a.view.Standbys, sb)
					}
				}
				for _, sl := range cl.Slots {
					if sl.Instance == "" {
						sl.Instance = fill
					}
					if sl.Instance == in.Name {
						a.view.Slots = append(a.view.Slots, sl)
					}
				}
				for _, sub := range cl.Subscriptions {
					if sub.Instance == in.Name {
						a.view.Subscriptions = append(a.view.Subscriptions, sub)
					}
				}
			}
		}
	}
	out := make([]api.ClusterView, 0, len(order))
	for _, id := range order {
		a := clusters[id]
		Link(&a.view.Cluster)
		a.view.Name = clusterName(a.configured, names[id], &a.view.Cluster)
		slices.Sort(a.view.Collectors)
		out = append(out, a.view)
	}
	slices.SortFunc(out, func(a, b api.ClusterView) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SystemIdentifier, b.SystemIdentifier))
	})
	return out
}

// reportedByLeader says whether the cluster's Patroni view is the leader's own answer.
func reportedByLeader(c *api.Cluster) bool {
	p := c.Patroni
	for _, in := range c.Instances {
		if in.Name == p.ReportedBy {
			return in.Patroni != nil && p.Leader != "" && in.Patroni.Name == p.Leader
		}
	}
	return false
}

// source is the snapshot a merged member was taken from.
type source struct {
	at    time.Time
	stale bool
}

// replaces says whether a member reported by s replaces the same member taken from prev: a live
// report beats a stale one, then the later collection wins.
func (s source) replaces(prev source) bool {
	if s.stale != prev.stale {
		return !s.stale
	}
	return s.at.After(prev.at)
}

func removeMember(c *api.Cluster, name string) {
	c.Instances = slices.DeleteFunc(c.Instances, func(in api.Instance) bool { return in.Name == name })
	c.Standbys = slices.DeleteFunc(c.Standbys, func(s api.Standby) bool { return s.Upstream == name })
	c.Slots = slices.DeleteFunc(c.Slots, func(s api.Slot) bool { return s.Instance == name })
	c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(s api.Subscription) bool { return s.Instance == name })
}

// staleInstance is what is known of a member whose collector stopped reporting: nothing now.
func staleInstance(in api.Instance, collector string) api.Instance {
	return api.Instance{Name: in.Name, Address: in.Address, Role: "unknown", ServerVersion: in.ServerVersion,
		Error: fmt.Sprintf("no report: collector %s has not pushed within two intervals", collector)}
}

// reportingPrimary is the member whose rows and slots a snapshot without upstreams holds: the
// primary on the highest timeline, as collectors before upstreams picked it.
func reportingPrimary(c *api.Cluster) string {
	name, tl := "", int64(-1)
	for i := range c.Instances {
		if in := &c.Instances[i]; isPrimary(in) && in.Timeline > tl {
			name, tl = in.Name, in.Timeline
		}
	}
	return name
}

func clusterName(configured, assigned string, c *api.Cluster) string {
	switch {
	case configured != "":
		return configured
	case assigned != "":
		return assigned
	}
	for i := range c.Instances {
		if isPrimary(&c.Instances[i]) {
			return c.Instances[i].Name
		}
	}
	return c.SystemIdentifier
}
