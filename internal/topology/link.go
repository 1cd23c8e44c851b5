// Package topology turns replication snapshots into the topology an on-call engineer means, and
// tells what changed between two of them. Link places every standby under the member it actually
// streams from; Merge joins the snapshots of every collector into one view per cluster; Diff names
// the events between two views of a cluster. Pure functions over api types: the collector links its
// own snapshot, the server merges, links and diffs the fleet's.
package topology

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/pganalytics/pganalytics/internal/api"
)

// StateDisconnected marks a monitored standby that no member lists in pg_stat_replication.
const StateDisconnected = "disconnected"

// Roles as instances report them.
const (
	rolePrimary = "primary"
	roleStandby = "standby"
)

// Link derives the cluster's topology from its members' own facts (every member's
// pg_stat_replication rows and slots, each standby's WAL receiver): it marks a split brain, sets each
// standby's upstream and lags, joins each replication row to the monitored standby it is, lists a
// monitored standby that streams from no one as "disconnected", and orders the members as a tree.
// It replaces whatever an earlier Link derived, so a merged cluster can be linked again.
func Link(c *api.Cluster) {
	c.Standbys = slices.DeleteFunc(c.Standbys, func(s api.Standby) bool { return s.State == StateDisconnected })
	for i := range c.Standbys {
		c.Standbys[i].Instance = ""
	}
	var primaries []*api.Instance
	maxTimeline := int64(0)
	for i := range c.Instances {
		in := &c.Instances[i]
		in.Upstream, in.UpstreamLagBytes, in.PrimaryLagBytes = "", nil, nil
		maxTimeline = max(maxTimeline, in.Timeline)
		if isPrimary(in) {
			primaries = append(primaries, in)
		}
	}
	c.Split = len(primaries) > 1
	c.Timeline = maxTimeline
	if len(primaries) > 0 {
		c.Timeline = 0
		for _, p := range primaries {
			c.Timeline = max(c.Timeline, p.Timeline)
		}
	}
	for i := range c.Instances {
		if in := &c.Instances[i]; isStandby(in) {
			linkStandby(c, in)
		}
	}
	for i := range c.Instances {
		in := &c.Instances[i]
		if in.Upstream != "" || isPrimary(in) || (in.Up && in.Receiver != nil && in.Receiver.Connected) {
			continue
		}
		d := api.Standby{ApplicationName: in.Name, State: StateDisconnected, Instance: in.Name}
		if r := in.Receiver; r != nil {
			if r.ApplicationName != "" {
				d.ApplicationName = r.ApplicationName
			}
			d.SlotName = r.SlotName
		}
		c.Standbys = append(c.Standbys, d)
	}
	if len(primaries) == 1 {
		p := primaries[0]
		for i := range c.Instances {
			if in := &c.Instances[i]; isStandby(in) {
				if lag, ok := lsnDiff(p.WALLSN, in.WALLSN); ok {
					in.PrimaryLagBytes = &lag
				}
			}
		}
	}
	c.Instances = treeOrder(c.Instances)
	if c.Patroni != nil {
		c.Patroni.Disagreements = patroniDisagreements(c)
	}
}

func isPrimary(in *api.Instance) bool { return in.Up && in.Role == rolePrimary }
func isStandby(in *api.Instance) bool { return in.Up && in.Role == roleStandby }

// linkStandby finds the member in streams from: among the members whose address is the WAL
// receiver's sender host and port, and those that list in in their pg_stat_replication (by slot, then
// by application name), the one both agree on, else the only one either names.
func linkStandby(c *api.Cluster, in *api.Instance) {
	r := in.Receiver
	if r == nil || !r.Connected {
		return
	}
	var byAddr, byRow []string
	rowOf := map[string]int{}
	for i := range c.Instances {
		u := &c.Instances[i]
		if u.Name == in.Name || !u.Up {
			continue
		}
		if SameEndpoint(u.Address, r.SenderHost, r.SenderPort) {
			byAddr = append(byAddr, u.Name)
		}
		if row, ok := matchRow(c.Standbys, u.Name, r); ok {
			byRow = append(byRow, u.Name)
			rowOf[u.Name] = row
		}
	}
	upstream := ""
	switch both := intersect(byAddr, byRow); {
	case len(both) == 1:
		upstream = both[0]
	case len(byRow) == 1:
		upstream = byRow[0]
	case len(byAddr) == 1:
		upstream = byAddr[0]
	default:
		return
	}
	in.Upstream = upstream
	if row, ok := rowOf[upstream]; ok {
		sb := &c.Standbys[row]
		sb.Instance = in.Name
		lag := sb.ReplayLagBytes
		in.UpstreamLagBytes = &lag
	}
}

// matchRow is upstream's pg_stat_replication row of the standby whose receiver is r: the one holding
// its slot, else the only one with its application name (not yet joined to another standby).
func matchRow(rows []api.Standby, upstream string, r *api.WALReceiver) (int, bool) {
	found := -1
	for i := range rows {
		sb := &rows[i]
		if sb.Upstream != upstream || sb.Instance != "" {
			continue
		}
		if r.SlotName != "" && sb.SlotName == r.SlotName {
			return i, true
		}
		if r.ApplicationName != "" && sb.ApplicationName == r.ApplicationName {
			if found >= 0 {
				found = -2 // ambiguous
			} else if found == -1 {
				found = i
			}
		}
	}
	return found, found >= 0
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// SameEndpoint says whether address (host:port, as collector.toml names the member) is the host
// and port another party reports for it (a WAL receiver's sender, Patroni). Loopback names are one
// host.
func SameEndpoint(address, host string, port int) bool {
	if host == "" || port == 0 {
		return false
	}
	h, p, err := net.SplitHostPort(address)
	if err != nil {
		i := strings.LastIndexByte(address, ':')
		if i < 0 {
			return false
		}
		h, p = address[:i], address[i+1:]
	}
	if p != strconv.Itoa(port) {
		return false
	}
	return normalHost(h) == normalHost(host)
}

func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if h == "localhost" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() {
			return "127.0.0.1"
		}
		return ip.String()
	}
	return h
}

// lsnDiff is a - b in bytes for two LSNs written as PostgreSQL prints them (X/X), at least 0.
func lsnDiff(a, b string) (int64, bool) {
	x, ok1 := parseLSN(a)
	y, ok2 := parseLSN(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	if x < y {
		return 0, true
	}
	d := x - y
	if d > 1<<62 {
		return 0, false
	}
	return int64(d), true
}

func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// treeOrder puts the primaries first, each followed depth-first by the standbys that stream from
// it (and theirs), then every member whose upstream is not known, in their original order.
func treeOrder(in []api.Instance) []api.Instance {
	children := map[string][]int{}
	for i := range in {
		if u := in[i].Upstream; u != "" {
			children[u] = append(children[u], i)
		}
	}
	out := make([]api.Instance, 0, len(in))
	placed := make([]bool, len(in))
	var walk func(i int)
	walk = func(i int) {
		if placed[i] {
			return
		}
		placed[i] = true
		out = append(out, in[i])
		for _, c := range children[in[i].Name] {
			walk(c)
		}
	}
	for i := range in {
		if isPrimary(&in[i]) {
			walk(i)
		}
	}
	for i := range in {
		if in[i].Upstream == "" || !slices.ContainsFunc(in, func(x api.Instance) bool { return x.Name == in[i].Upstream }) {
			walk(i)
		}
	}
	for i := range in { // cycles (not from a real cluster) keep their members
		walk(i)
	}
	return out
}

// Depths gives each member's depth in the tree (0 for a primary or a member without a known
// upstream), for indenting.
func Depths(c *api.Cluster) map[string]int {
	up := map[string]string{}
	for _, in := range c.Instances {
		up[in.Name] = in.Upstream
	}
	out := map[string]int{}
	for _, in := range c.Instances {
		d, cur := 0, in.Upstream
		for cur != "" && d < len(c.Instances) {
			d++
			cur = up[cur]
		}
		out[in.Name] = d
	}
	return out
}
