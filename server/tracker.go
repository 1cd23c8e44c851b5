package server

import (
	"context"
	"time"

	"github.com/pganalytics/pganalytics/internal/topology"
	"github.com/pganalytics/pganalytics/internal/wait"
	"github.com/pganalytics/pganalytics/server/store"
)

// Topology tracking pace: a round at most every trackMinGap after a push, and at least every
// trackEvery (collectors going stale push nothing).
const (
	trackMinGap = 500 * time.Millisecond
	trackEvery  = 5 * time.Second
)

// pokeTracker asks for a tracking round soon; it never blocks.
func (s *Server) pokeTracker() {
	select {
	case s.trackWake <- struct{}{}:
	default:
	}
}

// trackLoop compares each cluster's merged view with the last one recorded while this server holds
// the topology lock (one server at a time), recording the events between them and the history.
func (s *Server) trackLoop(ctx context.Context) {
	s.log.Info("tracking cluster topology")
	t := time.NewTicker(trackEvery)
	defer t.Stop()
	for {
		if err := s.track(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.dbError(ctx, "track_topology", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.trackWake:
			if !wait.Sleep(ctx, trackMinGap) { // let the pushes of one collection cycle land together
				return
			}
		}
	}
}

// track runs one round at now.
func (s *Server) track(ctx context.Context, now time.Time) error {
	tops, err := s.store.Replication(ctx, "")
	if err != nil {
		return err
	}
	known, err := s.store.TrackedClusters(ctx)
	if err != nil {
		return err
	}
	names := make(map[string]string, len(known))
	for id, k := range known {
		names[id] = k.View.Name
	}
	var changes []store.ClusterChange
	for _, v := range topology.Merge(tops, names) {
		ch := store.ClusterChange{View: v, Signature: store.SignatureOf(&v)}
		prev, seen := known[v.SystemIdentifier]
		switch {
		case !seen:
			ch.History = true
		case prev.Signature != ch.Signature:
			ch.History = true
			ch.Events = topology.Diff(&prev.View, &ch.View, now)
		case now.Sub(prev.HistoryAt) >= store.HistoryKeyframe:
			ch.History = true
		case !v.UpdatedAt.After(prev.View.UpdatedAt):
			continue // nothing new from any collector
		}
		changes = append(changes, ch)
	}
	if len(changes) == 0 {
		return nil
	}
	evs, err := s.store.RecordTopology(ctx, now, changes)
	if err != nil {
		return err
	}
	for _, e := range evs {
		s.metrics.events.WithLabelValues(e.Kind).Inc()
		s.log.Info("replication event", "kind", e.Kind, "cluster", e.Cluster, "instance", e.Instance, "message", e.Message)
	}
	return nil
}
