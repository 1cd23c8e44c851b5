package topology

import (
	"fmt"
	"strings"

	"github.com/pganalytics/pganalytics/internal/api"
)

// patroniDisagreements compares Patroni's members with what the monitored instances themselves
// say. A Patroni member no collector watches is left alone: nothing to compare it with.
func patroniDisagreements(c *api.Cluster) []api.PatroniDisagreement {
	p := c.Patroni
	var out []api.PatroniDisagreement
	add := func(instance, code, format string, args ...any) {
		out = append(out, api.PatroniDisagreement{Instance: instance, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	matched := map[string]bool{}
	for _, m := range p.Members {
		in := PatroniInstance(c, m)
		if in == nil {
			continue
		}
		matched[in.Name] = true
		leader := m.Role == "leader"
		switch {
		case !in.Up && (m.State == "running" || m.State == "streaming"):
			add(in.Name, api.PatroniRunningButDown, "Patroni says %s is %s; PostgreSQL does not answer", m.Name, m.State)
		case in.Up && m.State != "" && m.State != "running" && m.State != "streaming":
			add(in.Name, api.PatroniStoppedButUp, "Patroni says %s is %s; PostgreSQL answers as a %s", m.Name, m.State, in.Role)
		case leader && isStandby(in):
			add(in.Name, api.PatroniLeaderInRecovery, "Patroni's leader %s is a standby (in recovery) for PostgreSQL", m.Name)
		case isPrimary(in) && !leader:
			add(in.Name, api.PatroniPrimaryNotLeader, "%s is a PostgreSQL primary; Patroni calls it %s", in.Name, roleOr(m.Role))
		}
	}
	if p.Leader == "" {
		if prim := Primaries(c); len(prim) > 0 {
			add("", api.PatroniNoLeader, "Patroni has no leader; PostgreSQL's primary is %s", primaryText(prim))
		}
	}
	for i := range c.Instances {
		in := &c.Instances[i]
		// A primary Patroni does not list at all is outside its control: as bad as a wrong role.
		if !matched[in.Name] && isPrimary(in) && in.Patroni != nil && in.Patroni.Error == "" {
			add(in.Name, api.PatroniPrimaryNotLeader, "%s is a PostgreSQL primary that Patroni's /cluster does not list", in.Name)
		}
	}
	return out
}

func roleOr(role string) string {
	if role == "" {
		return "no role"
	}
	return role
}

// PatroniInstance is the monitored instance a Patroni member is: the one whose own Patroni names
// it, else the one at the member's published host and port; nil when no collector watches it.
func PatroniInstance(c *api.Cluster, m api.PatroniMember) *api.Instance {
	for i := range c.Instances {
		if in := &c.Instances[i]; in.Patroni != nil && in.Patroni.Name != "" && in.Patroni.Name == m.Name {
			return in
		}
	}
	for i := range c.Instances {
		if in := &c.Instances[i]; SameEndpoint(in.Address, m.Host, m.Port) {
			return in
		}
	}
	return nil
}

// PatroniMemberOf is Patroni's view of a monitored instance: its entry in the cluster's /cluster
// (which carries the lag), else what its own Patroni REST API answered; nil without Patroni.
func PatroniMemberOf(c *api.Cluster, in *api.Instance) *api.PatroniMember {
	if c.Patroni != nil {
		for i := range c.Patroni.Members {
			m := &c.Patroni.Members[i]
			if got := PatroniInstance(c, *m); got != nil && got.Name == in.Name && got.Address == in.Address {
				return m
			}
		}
	}
	return in.Patroni
}

// PatroniUnwatched names the Patroni members no collector watches.
func PatroniUnwatched(c *api.Cluster) []string {
	if c.Patroni == nil {
		return nil
	}
	var out []string
	for _, m := range c.Patroni.Members {
		if PatroniInstance(c, m) == nil {
			out = append(out, m.Name)
		}
	}
	return out
}

// patroni names what changed in Patroni's view: leader, maintenance mode, pending restarts, a
// member's REST API going away and back, and disagreements with PostgreSQL appearing and clearing.
func (d *differ) patroni() {
	for _, in := range d.next.Instances {
		p := member(&d.prev.Cluster, in.Name)
		if p == nil || p.Patroni == nil || in.Patroni == nil {
			continue
		}
		switch was, is := p.Patroni.Error != "", in.Patroni.Error != ""; {
		case !was && is:
			d.add(api.EventPatroniUnreachable, api.SeverityWarning, in.Name,
				fmt.Sprintf("Patroni on %s does not answer: %s", in.Name, in.Patroni.Error), map[string]any{"error": in.Patroni.Error})
		case was && !is:
			d.add(api.EventPatroniReachable, api.SeverityInfo, in.Name, fmt.Sprintf("Patroni on %s answers again", in.Name), nil)
		}
	}
	prev, next := d.prev.Patroni, d.next.Patroni
	if prev == nil || next == nil {
		return
	}
	if prev.Leader != next.Leader {
		details := map[string]any{"old_leader": prev.Leader, "new_leader": next.Leader}
		msg := fmt.Sprintf("Patroni leader %s → %s", orNone(prev.Leader), orNone(next.Leader))
		if h := next.History; len(h) > 0 && next.Leader != "" && h[len(h)-1].NewLeader == next.Leader && h[len(h)-1].Reason != "" {
			details["reason"] = h[len(h)-1].Reason
			msg += " (" + h[len(h)-1].Reason + ")"
		}
		d.add(api.EventPatroniLeaderChanged, api.SeverityWarning, d.patroniInstance(next.Leader), msg, details)
	}
	switch {
	case !prev.Paused && next.Paused:
		d.add(api.EventPatroniPaused, api.SeverityWarning, "", "Patroni maintenance mode on: no automatic failover", nil)
	case prev.Paused && !next.Paused:
		d.add(api.EventPatroniResumed, api.SeverityInfo, "", "Patroni maintenance mode off", nil)
	}
	pending := map[string]bool{}
	for _, m := range prev.Members {
		pending[m.Name] = m.PendingRestart
	}
	for _, m := range next.Members {
		if was, known := pending[m.Name]; known && !was && m.PendingRestart {
			d.add(api.EventPatroniPendingRestart, api.SeverityInfo, d.patroniInstance(m.Name),
				fmt.Sprintf("%s needs a restart to apply a changed setting", m.Name), nil)
		}
	}
	key := func(x api.PatroniDisagreement) string { return x.Instance + "\x00" + x.Code }
	was := map[string]bool{}
	for _, x := range prev.Disagreements {
		was[key(x)] = true
	}
	is := map[string]bool{}
	for _, x := range next.Disagreements {
		is[key(x)] = true
		if !was[key(x)] {
			d.add(api.EventPatroniDisagreement, api.SeverityWarning, x.Instance, x.Message, map[string]any{"code": x.Code})
		}
	}
	for _, x := range prev.Disagreements {
		if !is[key(x)] {
			d.add(api.EventPatroniAgreement, api.SeverityInfo, x.Instance,
				"Patroni and PostgreSQL agree again: "+x.Message, map[string]any{"code": x.Code})
		}
	}
}

// patroniInstance is the [[postgres]] name of a Patroni member, else the member's name.
func (d *differ) patroniInstance(name string) string {
	for _, m := range d.next.Patroni.Members {
		if m.Name == name {
			if in := PatroniInstance(&d.next.Cluster, m); in != nil {
				return in.Name
			}
		}
	}
	return name
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// patroniSignature is the shape of Patroni's view, for Signature.
func patroniSignature(p *api.PatroniCluster) string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "p|%s|%s|%t|%d\n", p.Scope, p.Leader, p.Paused, len(p.History))
	for _, m := range p.Members {
		fmt.Fprintf(&b, "pm|%s|%s|%s|%d|%t\n", m.Name, m.Role, m.State, m.Timeline, m.PendingRestart)
	}
	for _, x := range p.Disagreements {
		fmt.Fprintf(&b, "pd|%s|%s\n", x.Instance, x.Code)
	}
	return b.String()
}
