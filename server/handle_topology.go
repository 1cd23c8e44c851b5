package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
	"github.com/pganalytics/pganalytics/server/store"
)

// maxHistoryWindow bounds GET /clusters/{name}/history: longer than any retention worth keeping.
const maxHistoryWindow = 400 * 24 * time.Hour

// handleReplication is GET /api/v1/replication?collector_id=&at=: every collector's latest
// snapshot and the clusters merged from them; with at, the clusters as the history holds them then.
func (s *Server) handleReplication(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "collector_id", "at")
	if e != nil {
		writeErr(w, e)
		return
	}
	at, e := queryTime(q, "at")
	if e != nil {
		writeErr(w, e)
		return
	}
	id := q.Get("collector_id")
	if !at.IsZero() {
		if id != "" {
			writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "at and collector_id cannot be combined: the history is kept per cluster"))
			return
		}
		views, err := s.store.TopologyAt(r.Context(), at)
		if err != nil {
			writeErr(w, s.storeFailure(r.Context(), "topology_at", err))
			return
		}
		at = at.UTC()
		writeJSON(w, http.StatusOK, api.ReplicationResponse{At: &at, Collectors: []api.CollectorTopology{}, Clusters: nonNilViews(views)})
		return
	}
	if len(id) > maxIDBytes {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "collector not found"))
		return
	}
	tops, views, err := s.liveTopology(r.Context(), id)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "replication", err))
		return
	}
	writeJSON(w, http.StatusOK, api.ReplicationResponse{Collectors: tops, Clusters: views})
}

// liveTopology is the latest snapshot of every collector (or one) and the clusters merged from
// them, named as the tracker named them.
func (s *Server) liveTopology(ctx context.Context, collectorID string) ([]api.CollectorTopology, []api.ClusterView, error) {
	tops, err := s.store.Replication(ctx, collectorID)
	if err != nil {
		return nil, nil, err
	}
	names, err := s.store.ClusterNames(ctx)
	if err != nil {
		return nil, nil, err
	}
	if tops == nil {
		tops = []api.CollectorTopology{}
	}
	return tops, topology.Merge(tops, names), nil
}

func nonNilViews(v []api.ClusterView) []api.ClusterView {
	if v == nil {
		return []api.ClusterView{}
	}
	return v
}

// handleClusters is GET /api/v1/clusters: the live view of every cluster.
func (s *Server) handleClusters(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	_, views, err := s.liveTopology(r.Context(), "")
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "replication", err))
		return
	}
	writeJSON(w, http.StatusOK, api.ClustersResponse{Clusters: views})
}

// handleClusterHistory is GET /api/v1/clusters/{name}/history?since=&until=: who was primary
// when (default: the last 24 hours).
func (s *Server) handleClusterHistory(w http.ResponseWriter, r *http.Request, _ *principal) {
	name, ok := pathID(w, r, "name")
	if !ok {
		return
	}
	q, e := query(r, "since", "until")
	if e != nil {
		writeErr(w, e)
		return
	}
	until, e := queryTime(q, "until")
	if e != nil {
		writeErr(w, e)
		return
	}
	if until.IsZero() {
		until = time.Now()
	}
	since, e := queryTime(q, "since")
	if e != nil {
		writeErr(w, e)
		return
	}
	if since.IsZero() {
		since = until.Add(-24 * time.Hour)
	}
	switch {
	case !until.After(since):
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "until must be after since"))
		return
	case until.Sub(since) > maxHistoryWindow:
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "since..until spans more than %d days", int(maxHistoryWindow/(24*time.Hour))))
		return
	}
	h, err := s.store.ClusterHistory(r.Context(), name, since, until)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "cluster not found"))
	case errors.Is(err, store.ErrAmbiguous):
		writeErr(w, newError(http.StatusConflict, codeConflict, "%s", strings.TrimPrefix(err.Error(), store.ErrAmbiguous.Error()+": ")))
	case err != nil:
		writeErr(w, s.storeFailure(r.Context(), "cluster_history", err))
	default:
		writeJSON(w, http.StatusOK, h)
	}
}

// handleEvents is GET /api/v1/events?cluster=&instance=&kind=&since=&until=&limit=&cursor=: newest
// first; kind may list several, comma-separated.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ *principal) {
	q, e := query(r, "cluster", "instance", "kind", "since", "until", "limit", "cursor")
	if e != nil {
		writeErr(w, e)
		return
	}
	eq := store.EventQuery{Cluster: q.Get("cluster"), Instance: q.Get("instance")}
	if len(eq.Cluster) > maxIDBytes || len(eq.Instance) > maxIDBytes {
		writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "cluster and instance: at most %d bytes", maxIDBytes))
		return
	}
	if k := q.Get("kind"); k != "" {
		for kind := range strings.SplitSeq(k, ",") {
			if !slices.Contains(api.EventKinds(), kind) {
				writeErr(w, newError(http.StatusBadRequest, codeInvalidParameter, "kind: %q is not an event kind (%s)", truncate(kind, 40), strings.Join(api.EventKinds(), ", ")))
				return
			}
			eq.Kinds = append(eq.Kinds, kind)
		}
	}
	var limit int64
	if eq.Since, e = queryTime(q, "since"); e == nil {
		eq.Until, e = queryTime(q, "until")
	}
	if e == nil && !eq.Since.IsZero() && !eq.Until.IsZero() && eq.Until.Before(eq.Since) {
		e = newError(http.StatusBadRequest, codeInvalidParameter, "until is before since")
	}
	if e == nil {
		limit, e = queryInt(q, "limit", 1, store.MaxEventsLimit)
	}
	if e == nil {
		eq.Before, e = queryInt(q, "cursor", 1, 1<<62)
	}
	if e != nil {
		writeErr(w, e)
		return
	}
	eq.Limit = int(limit)
	if eq.Limit == 0 {
		eq.Limit = 100
	}
	evs, err := s.store.Events(r.Context(), eq)
	if err != nil {
		writeErr(w, s.storeFailure(r.Context(), "events", err))
		return
	}
	resp := api.EventsResponse{Events: evs}
	if evs == nil {
		resp.Events = []api.Event{}
	}
	if len(evs) == eq.Limit {
		resp.NextCursor = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}
