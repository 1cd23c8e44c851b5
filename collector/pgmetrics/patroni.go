package pgmetrics

// emitPatroni turns the member's Patroni reading into pg_patroni_* samples; nothing when no
// patroni_url is configured, pg_patroni_up 0 when the REST API did not answer.
func emitPatroni(e *emitter, s *State) {
	if s.Patroni == nil && s.PatroniErr == nil {
		return
	}
	e.add("pg_patroni_up", boolf(s.Patroni != nil))
	r := s.Patroni
	if r == nil {
		return
	}
	self := r.Self
	e.add("pg_patroni_leader", boolf(self.Name != "" && self.Name == r.Cluster.Leader))
	e.add("pg_patroni_running", boolf(self.State == "running" || self.State == "streaming"))
	e.add("pg_patroni_timeline", float64(self.Timeline))
	e.add("pg_patroni_paused", boolf(r.Cluster.Paused))
	e.add("pg_patroni_pending_restart", boolf(self.PendingRestart))
	addOpt(e, "pg_patroni_lag_bytes", self.LagBytes)
	e.add("pg_patroni_cluster_members", float64(len(r.Cluster.Members)))
	e.add("pg_patroni_cluster_has_leader", boolf(r.Cluster.Leader != ""))
	e.add("pg_patroni_history_switches", float64(r.Switches))
}
