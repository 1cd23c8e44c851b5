package replication

import (
	"sort"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/widget"
)

// sample is one point of a standby's lag history.
type sample struct {
	At    time.Time
	Bytes int64
	Secs  float64
}

// ghost is a standby that an earlier snapshot of its collector showed and the latest one does not.
type ghost struct {
	SystemIdentifier string
	Standby          api.Standby
	Since            time.Time
}

// collectorState is what the view knows about one collector.
type collectorState struct {
	topo   api.CollectorTopology
	at     time.Time        // the snapshot's collection time: newer snapshots replace older ones only
	ghosts map[string]ghost // by standby key
}

// state is the view's data, independent of rendering.
type state struct {
	collectors  map[string]*collectorState
	order       []string // collector ids by name
	history     map[string]*widget.Ring[sample]
	historySize int
}

func newState(historySize int) state {
	return state{
		collectors:  map[string]*collectorState{},
		history:     map[string]*widget.Ring[sample]{},
		historySize: historySize,
	}
}

// standbyID tells standbys of one cluster apart. application_name alone is not enough: every standby
// without its own setting is called "walreceiver".
func standbyID(sysid string, sb api.Standby) string {
	return sysid + "/" + sb.ApplicationName + "@" + sb.ClientAddr
}

func standbyKey(collectorID, sysid string, sb api.Standby) string {
	return "sb/" + collectorID + "/" + standbyID(sysid, sb)
}

func snapshotTime(t api.CollectorTopology) time.Time {
	if !t.Snapshot.CollectedAt.IsZero() {
		return t.Snapshot.CollectedAt
	}
	return t.ReceivedAt
}

// replaceAll applies a full answer of GET /replication: collectors it no longer lists were
// deregistered and leave the view.
func (s *state) replaceAll(resp api.ReplicationResponse, now time.Time) {
	keep := make(map[string]bool, len(resp.Collectors))
	for _, t := range resp.Collectors {
		keep[t.CollectorID] = true
		s.apply(t, now)
	}
	for id := range s.collectors {
		if !keep[id] {
			s.remove(id)
		}
	}
	s.sortOrder()
}

func (s *state) remove(id string) {
	prefix := "sb/" + id + "/"
	for k := range s.history {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			delete(s.history, k)
		}
	}
	delete(s.collectors, id)
}

// applyOne applies one topology event from the stream.
func (s *state) applyOne(t api.CollectorTopology, now time.Time) {
	_, known := s.collectors[t.CollectorID]
	s.apply(t, now)
	if !known {
		s.sortOrder()
	}
}

// apply merges one collector's topology. An older snapshot than the one held (a poll answer overtaken
// by a stream event) only refreshes the stale flag.
func (s *state) apply(t api.CollectorTopology, now time.Time) {
	at := snapshotTime(t)
	cs, ok := s.collectors[t.CollectorID]
	if !ok {
		cs = &collectorState{ghosts: map[string]ghost{}}
		s.collectors[t.CollectorID] = cs
	}
	if ok && at.Before(cs.at) {
		cs.topo.Stale = t.Stale
		return
	}
	newer := !ok || at.After(cs.at)
	if ok {
		s.trackGhosts(cs, t, now)
	}
	cs.topo, cs.at = t, at
	if !newer {
		return
	}
	for _, cl := range t.Snapshot.Clusters {
		for _, sb := range cl.Standbys {
			k := standbyKey(t.CollectorID, cl.SystemIdentifier, sb)
			h := s.history[k]
			if h == nil {
				h = widget.NewRing[sample](s.historySize)
				s.history[k] = h
			}
			h.Push(sample{At: at, Bytes: sb.ReplayLagBytes, Secs: sb.ReplayLagSeconds})
		}
	}
}

// trackGhosts records standbys that vanished between cs's snapshot and t, and forgets those back.
func (s *state) trackGhosts(cs *collectorState, t api.CollectorTopology, now time.Time) {
	present := map[string]bool{}
	for _, cl := range t.Snapshot.Clusters {
		for _, sb := range cl.Standbys {
			id := standbyID(cl.SystemIdentifier, sb)
			present[id] = true
			delete(cs.ghosts, id)
		}
	}
	for _, cl := range cs.topo.Snapshot.Clusters {
		for _, sb := range cl.Standbys {
			id := standbyID(cl.SystemIdentifier, sb)
			if !present[id] {
				cs.ghosts[id] = ghost{SystemIdentifier: cl.SystemIdentifier, Standby: sb, Since: now}
			}
		}
	}
}

func (s *state) sortOrder() {
	s.order = s.order[:0]
	for id := range s.collectors {
		s.order = append(s.order, id)
	}
	sort.Slice(s.order, func(i, j int) bool {
		a, b := s.collectors[s.order[i]].topo, s.collectors[s.order[j]].topo
		if a.CollectorName != b.CollectorName {
			return a.CollectorName < b.CollectorName
		}
		return a.CollectorID < b.CollectorID
	})
}

// sortedGhosts lists cs's ghosts in a stable order.
func (cs *collectorState) sortedGhosts() []ghost {
	out := make([]ghost, 0, len(cs.ghosts))
	for _, g := range cs.ghosts {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		return standbyID(out[i].SystemIdentifier, out[i].Standby) < standbyID(out[j].SystemIdentifier, out[j].Standby)
	})
	return out
}
