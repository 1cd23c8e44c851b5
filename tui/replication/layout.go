package replication

import (
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/tui/theme"
)

type rowKind int

const (
	rowCollector rowKind = iota
	rowCluster
	rowInstance
	rowHeading
	rowStandby
	rowGhost
	rowSlot
	rowSubscription
	rowNote
)

// Table headings.
const (
	headStandbys      = "standbys"
	headSlots         = "slots"
	headSubscriptions = "subscriptions"
)

// row is one entry of the view: a heading, a note or an entity the cursor can select. Rows point into
// the state's snapshots and are rebuilt whenever the state, the filter or the width changes.
type row struct {
	kind    rowKind
	key     string // selection key; empty when the cursor skips the row
	col     *collectorState
	cluster *api.Cluster
	inst    *api.Instance // the instance row's own, or a standby's own instance when monitored
	sb      *api.Standby
	ghost   *ghost
	slot    *api.Slot
	sub     *api.Subscription
	text    string // heading name or note
	verdict verdict
	counts  [theme.LevelCrit + 1]int // collector rows: levels of the entities below
	line    int                      // first line of the row
	height  int
}

// layout is the rows of the current state as filtered, with the totals the status line shows.
type layout struct {
	rows     []row
	lines    int
	counts   [theme.LevelCrit + 1]int // over every entity, filter or not
	standbys int
}

// candidate is a row with whether it matches the filter on its own.
type candidate struct {
	row   row
	match bool
}

// buildLayout walks the state in display order.
func (m *Model) buildLayout() layout {
	var lay layout
	for _, id := range m.state.order {
		m.addCollector(&lay, m.state.collectors[id])
	}
	line := 0
	for i := range lay.rows {
		lay.rows[i].line = line
		lay.rows[i].height = m.rowHeight(&lay.rows[i])
		line += lay.rows[i].height
	}
	lay.lines = line
	return lay
}

// addCollector appends the collector's rows. A collector whose name matches the filter shows whole;
// otherwise only matching entities show, under their headings.
func (m *Model) addCollector(lay *layout, cs *collectorState) {
	t := cs.topo
	all := m.filter.Match(t.CollectorName, t.CollectorID)
	var counts [theme.LevelCrit + 1]int
	var body []row
	ghosts := cs.sortedGhosts()
	reported := map[string]bool{}
	for ci := range t.Snapshot.Clusters {
		cl := &t.Snapshot.Clusters[ci]
		reported[cl.SystemIdentifier] = true
		body = append(body, m.clusterRows(cs, cl, ghosts, all, &counts)...)
	}
	// Standbys of a cluster the collector stopped reporting altogether.
	var orphans []candidate
	for i := range ghosts {
		if g := &ghosts[i]; !reported[g.SystemIdentifier] {
			orphans = append(orphans, candidate{m.ghostRow(cs, g), m.filter.Match(g.Standby.ApplicationName, g.Standby.Instance)})
		}
	}
	body = appendSection(body, row{kind: rowHeading, col: cs, text: headStandbys}, orphans, all, "", &counts)
	if len(t.Snapshot.Clusters) == 0 && len(ghosts) == 0 && all {
		body = append(body, row{kind: rowNote, col: cs, text: "no snapshot yet"})
	}
	hdr := row{kind: rowCollector, key: "col/" + t.CollectorID, col: cs, verdict: collectorVerdict(t), counts: counts}
	for l, n := range counts {
		lay.counts[l] += n
	}
	lay.counts[hdr.verdict.Level]++
	for _, cl := range t.Snapshot.Clusters {
		lay.standbys += len(cl.Standbys)
	}
	if all || len(body) > 0 {
		lay.rows = append(lay.rows, hdr)
		lay.rows = append(lay.rows, body...)
	}
}

// appendSection appends heading and the candidates that show; with none showing, the heading and
// emptyNote show only when the whole collector does. Every candidate counts toward counts.
func appendSection(out []row, heading row, items []candidate, all bool, emptyNote string, counts *[theme.LevelCrit + 1]int) []row {
	var kept []row
	for _, it := range items {
		counts[it.row.verdict.Level]++
		if all || it.match {
			kept = append(kept, it.row)
		}
	}
	switch {
	case len(kept) > 0:
		if heading.text != "" {
			out = append(out, heading)
		}
		out = append(out, kept...)
	case all && emptyNote != "":
		out = append(out, heading, row{kind: rowNote, col: heading.col, cluster: heading.cluster, text: emptyNote})
	}
	return out
}

func (m *Model) clusterRows(cs *collectorState, cl *api.Cluster, ghosts []ghost, all bool, counts *[theme.LevelCrit + 1]int) []row {
	id := cs.topo.CollectorID
	prefix := id + "/" + cl.SystemIdentifier + "/"
	instances := map[string]*api.Instance{}
	var inst []candidate
	for i := range cl.Instances {
		in := &cl.Instances[i]
		instances[in.Name] = in
		inst = append(inst, candidate{row{kind: rowInstance, key: "in/" + prefix + in.Name, col: cs, cluster: cl, inst: in,
			verdict: judgeInstance(*in)}, m.filter.Match(in.Name, in.Address)})
	}
	var standbys []candidate
	for i := range cl.Standbys {
		sb := &cl.Standbys[i]
		var self *api.Instance
		if sb.Instance != "" {
			self = instances[sb.Instance]
		}
		standbys = append(standbys, candidate{row{kind: rowStandby, key: standbyKey(id, cl.SystemIdentifier, *sb), col: cs, cluster: cl,
			sb: sb, inst: self, verdict: judgeStandby(m.opts.Thresholds, *sb, self)},
			m.filter.Match(sb.ApplicationName, sb.Instance, sb.ClientAddr, sb.SlotName)})
	}
	for i := range ghosts {
		if g := &ghosts[i]; g.SystemIdentifier == cl.SystemIdentifier {
			standbys = append(standbys, candidate{m.ghostRow(cs, g), m.filter.Match(g.Standby.ApplicationName, g.Standby.Instance)})
		}
	}
	var slots []candidate
	for i := range cl.Slots {
		s := &cl.Slots[i]
		slots = append(slots, candidate{row{kind: rowSlot, key: "slot/" + prefix + s.Name, col: cs, cluster: cl, slot: s,
			verdict: judgeSlot(m.opts.Thresholds, *s)}, m.filter.Match(s.Name, s.Plugin, s.Database)})
	}
	var subs []candidate
	for i := range cl.Subscriptions {
		s := &cl.Subscriptions[i]
		subs = append(subs, candidate{row{kind: rowSubscription, key: "sub/" + prefix + s.Instance + "/" + s.Name, col: cs, cluster: cl,
			sub: s, verdict: judgeSubscription(m.opts.Thresholds, *s)}, m.filter.Match(s.Name, s.Instance)})
	}
	heading := func(name string) row { return row{kind: rowHeading, col: cs, cluster: cl, text: name} }
	var out []row
	out = appendSection(out, row{}, inst, all, "", counts)
	out = appendSection(out, heading(headStandbys), standbys, all, "no standbys connected", counts)
	out = appendSection(out, heading(headSlots), slots, all, "", counts)
	out = appendSection(out, heading(headSubscriptions), subs, all, "", counts)
	if len(out) == 0 {
		return nil
	}
	return append([]row{{kind: rowCluster, col: cs, cluster: cl}}, out...)
}

func (m *Model) ghostRow(cs *collectorState, g *ghost) row {
	return row{kind: rowGhost, key: standbyKey(cs.topo.CollectorID, g.SystemIdentifier, g.Standby), col: cs, ghost: g,
		verdict: verdict{Level: theme.LevelCrit, Reasons: []string{"disappeared from pg_stat_replication"}}}
}

// rowHeight is how many lines a row takes at the current width.
func (m *Model) rowHeight(r *row) int {
	if r.kind != rowStandby {
		return 1
	}
	h := 1
	if !m.wide() {
		h++ // sent/write/flush on a line of their own
	}
	if r.inst != nil {
		h++ // the standby's WAL receiver
	}
	return h
}

func collectorVerdict(t api.CollectorTopology) verdict {
	if t.Stale {
		return verdict{Level: theme.LevelCrit, Reasons: []string{"stale: no push within two intervals"}}
	}
	return verdict{Level: theme.LevelOK}
}
