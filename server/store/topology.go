package store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/topology"
)

const (
	// TopologyLockID is the advisory lock the API server that tracks cluster topology holds (one
	// at a time, like alerting).
	TopologyLockID int64 = 0x7067612d746f706f

	// HistoryKeyframe is the longest a watched cluster goes without a topology_history row: the
	// figures (lags, LSNs) of ?at= answers are at most this old.
	HistoryKeyframe = time.Minute

	// eventNotifyPrefix marks an event id among the collector ids on TopologyChannel.
	eventNotifyPrefix = "event:"
)

// EventID returns the event id a TopologyChannel payload announces, if it announces one.
func EventID(payload string) (int64, bool) {
	rest, ok := strings.CutPrefix(payload, eventNotifyPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

// TrackedCluster is a cluster as the tracker last recorded it.
type TrackedCluster struct {
	View      api.ClusterView
	Signature string // md5 of topology.Signature
	HistoryAt time.Time
}

// SignatureOf is the stored form of topology.Signature(v).
func SignatureOf(v *api.ClusterView) string {
	sum := md5.Sum([]byte(topology.Signature(v)))
	return hex.EncodeToString(sum[:])
}

// TrackedClusters returns every cluster the tracker recorded, by system identifier.
func (s *Store) TrackedClusters(ctx context.Context) (map[string]TrackedCluster, error) {
	rows, err := s.pool.Query(ctx, `SELECT view, signature, history_at FROM clusters`)
	if err != nil {
		return nil, fmt.Errorf("select clusters: %w", err)
	}
	out := map[string]TrackedCluster{}
	for rows.Next() {
		var (
			raw []byte
			tc  TrackedCluster
		)
		if err := rows.Scan(&raw, &tc.Signature, &tc.HistoryAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("select clusters: %w", err)
		}
		if err := json.Unmarshal(raw, &tc.View); err != nil {
			rows.Close()
			return nil, fmt.Errorf("decode cluster view: %w", err)
		}
		out[tc.View.SystemIdentifier] = tc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select clusters: %w", err)
	}
	return out, nil
}

// ClusterNames maps each tracked cluster's system identifier to the name it keeps.
func (s *Store) ClusterNames(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT system_identifier, name FROM clusters`)
	if err != nil {
		return nil, fmt.Errorf("select cluster names: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("select cluster names: %w", err)
		}
		out[id] = name
	}
	return out, rows.Err()
}

// ClusterChange is one cluster's new view, what changed since the last one, and whether it goes
// into the history.
type ClusterChange struct {
	View      api.ClusterView
	Signature string
	Events    []api.Event
	History   bool
}

// RecordTopology stores the tracker's round at now in one transaction: each cluster's view, its
// history row when due, and its events, which it announces on TopologyChannel. It returns the
// events with their ids.
func (s *Store) RecordTopology(ctx context.Context, now time.Time, changes []ClusterChange) ([]api.Event, error) {
	var out []api.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = out[:0]
		for i := range changes {
			ch := &changes[i]
			view, err := json.Marshal(ch.View)
			if err != nil {
				return fmt.Errorf("encode cluster view: %w", err)
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO clusters AS c (system_identifier, name, updated_at, view, signature, history_at)
				VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN $3 ELSE '-infinity'::timestamptz END)
				ON CONFLICT (system_identifier) DO UPDATE SET
				       name = EXCLUDED.name, updated_at = EXCLUDED.updated_at, view = EXCLUDED.view,
				       signature = EXCLUDED.signature,
				       history_at = CASE WHEN $6 THEN EXCLUDED.updated_at ELSE c.history_at END`,
				ch.View.SystemIdentifier, ch.View.Name, now, view, ch.Signature, ch.History)
			if err != nil {
				return fmt.Errorf("record cluster %s: %w", ch.View.SystemIdentifier, err)
			}
			if ch.History {
				primaries := topology.Primaries(&ch.View.Cluster)
				if primaries == nil {
					primaries = []string{}
				}
				_, err = tx.Exec(ctx, `
					INSERT INTO topology_history (system_identifier, at, primaries, timeline, view)
					VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
					ch.View.SystemIdentifier, now, primaries, ch.View.Timeline, view)
				if err != nil {
					return fmt.Errorf("record cluster history: %w", err)
				}
			}
			evs, err := insertEvents(ctx, tx, ch.Events)
			if err != nil {
				return err
			}
			out = append(out, evs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertEvents appends evs and announces each on TopologyChannel (delivered at commit).
func insertEvents(ctx context.Context, tx pgx.Tx, evs []api.Event) ([]api.Event, error) {
	out := make([]api.Event, 0, len(evs))
	for _, e := range evs {
		details := e.Details
		if details == nil {
			details = map[string]any{}
		}
		raw, err := json.Marshal(details)
		if err != nil {
			return nil, fmt.Errorf("encode event details: %w", err)
		}
		err = tx.QueryRow(ctx, `
			WITH e AS (
			    INSERT INTO events (at, kind, severity, system_identifier, cluster, instance, message, details)
			    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
			SELECT id, pg_notify('`+TopologyChannel+`', '`+eventNotifyPrefix+`' || id) IS NOT NULL FROM e`,
			e.At, e.Kind, e.Severity, e.SystemIdentifier, e.Cluster, e.Instance, e.Message, raw).Scan(&e.ID, new(bool))
		if err != nil {
			return nil, fmt.Errorf("record event: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// EventQuery selects events; zero fields do not filter. Cluster matches a name or a system
// identifier. Before is the paging cursor: only events with a smaller id.
type EventQuery struct {
	Cluster, Instance string
	Kinds             []string
	Since, Until      time.Time
	Before            int64
	Limit             int
}

// MaxEventsLimit is the most events one page holds.
const MaxEventsLimit = 1000

const eventColumns = `id, at, kind, severity, system_identifier, cluster, instance, message, details`

func scanEvent(row pgx.CollectableRow) (api.Event, error) {
	var (
		e   api.Event
		raw []byte
	)
	if err := row.Scan(&e.ID, &e.At, &e.Kind, &e.Severity, &e.SystemIdentifier, &e.Cluster, &e.Instance, &e.Message, &raw); err != nil {
		return e, err
	}
	if err := json.Unmarshal(raw, &e.Details); err != nil {
		return e, fmt.Errorf("decode event %d details: %w", e.ID, err)
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return e, nil
}

// Events returns the events q selects, newest first, at most q.Limit (default 100).
func (s *Store) Events(ctx context.Context, q EventQuery) ([]api.Event, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Cluster != "" {
		p := arg(q.Cluster)
		where = append(where, `system_identifier IN (SELECT system_identifier FROM clusters WHERE name = `+p+` OR system_identifier = `+p+`)`)
	}
	if q.Instance != "" {
		where = append(where, `instance = `+arg(q.Instance))
	}
	if len(q.Kinds) > 0 {
		where = append(where, `kind = ANY(`+arg(q.Kinds)+`)`)
	}
	if !q.Since.IsZero() {
		where = append(where, `at >= `+arg(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, `at < `+arg(q.Until))
	}
	if q.Before > 0 {
		where = append(where, `id < `+arg(q.Before))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	sql := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY id DESC LIMIT ` + arg(min(limit, MaxEventsLimit))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	return out, nil
}

// Event returns one event (ErrNotFound if there is none with that id).
func (s *Store) Event(ctx context.Context, id int64) (api.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id)
	if err != nil {
		return api.Event{}, fmt.Errorf("select event: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if err != nil {
		return api.Event{}, notFound(err, "select event")
	}
	return e, nil
}

// TopologyAt returns each cluster as the history holds it at at: its latest row at or before at,
// for the clusters watched then (a row within three keyframes), by name.
func (s *Store) TopologyAt(ctx context.Context, at time.Time) ([]api.ClusterView, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT h.view FROM clusters c
		CROSS JOIN LATERAL (
		    SELECT view FROM topology_history
		     WHERE system_identifier = c.system_identifier AND at <= $1 AND at > $1 - $2::interval
		     ORDER BY at DESC LIMIT 1) h
		 ORDER BY c.name, c.system_identifier`, at, 3*HistoryKeyframe)
	if err != nil {
		return nil, fmt.Errorf("select topology history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.ClusterView, error) {
		var (
			v   api.ClusterView
			raw []byte
		)
		if err := row.Scan(&raw); err != nil {
			return v, err
		}
		return v, json.Unmarshal(raw, &v)
	})
	if err != nil {
		return nil, fmt.Errorf("select topology history: %w", err)
	}
	return out, nil
}

// ErrAmbiguous is returned when a cluster name names several clusters.
var ErrAmbiguous = errors.New("ambiguous")

// resolveCluster finds the system identifier of the cluster called key (a name or a system
// identifier).
func (s *Store) resolveCluster(ctx context.Context, key string) (id, name string, err error) {
	rows, err := s.pool.Query(ctx, `SELECT system_identifier, name FROM clusters WHERE system_identifier = $1 OR name = $1
	                                 ORDER BY system_identifier = $1 DESC`, key)
	if err != nil {
		return "", "", fmt.Errorf("select cluster: %w", err)
	}
	type pair struct{ id, name string }
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pair, error) {
		var p pair
		return p, row.Scan(&p.id, &p.name)
	})
	switch {
	case err != nil:
		return "", "", fmt.Errorf("select cluster: %w", err)
	case len(found) == 0:
		return "", "", ErrNotFound
	case len(found) > 1 && found[0].id != key:
		return "", "", fmt.Errorf("%w: %d clusters are called %q; name one by its system identifier", ErrAmbiguous, len(found), key)
	}
	return found[0].id, found[0].name, nil
}

// ClusterHistory returns who was primary when between since and until: the history's rows folded
// into periods of the same primaries and timeline, the period running at since first.
func (s *Store) ClusterHistory(ctx context.Context, key string, since, until time.Time) (api.ClusterHistory, error) {
	id, name, err := s.resolveCluster(ctx, key)
	if err != nil {
		return api.ClusterHistory{}, err
	}
	h := api.ClusterHistory{Cluster: name, SystemIdentifier: id, Since: since.UTC(), Until: until.UTC(), Periods: []api.PrimaryPeriod{}}
	rows, err := s.pool.Query(ctx, `
		(SELECT at, primaries, timeline FROM topology_history
		  WHERE system_identifier = $1 AND at <= $2 ORDER BY at DESC LIMIT 1)
		UNION ALL
		(SELECT at, primaries, timeline FROM topology_history
		  WHERE system_identifier = $1 AND at > $2 AND at < $3 ORDER BY at)
		ORDER BY at`, id, since, until)
	if err != nil {
		return h, fmt.Errorf("select cluster history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			at        time.Time
			primaries []string
			timeline  int64
		)
		if err := rows.Scan(&at, &primaries, &timeline); err != nil {
			return h, fmt.Errorf("select cluster history: %w", err)
		}
		if primaries == nil {
			primaries = []string{}
		}
		if n := len(h.Periods); n > 0 && h.Periods[n-1].Timeline == timeline && slices.Equal(h.Periods[n-1].Primaries, primaries) {
			continue
		}
		if n := len(h.Periods); n > 0 {
			end := at.UTC()
			h.Periods[n-1].Until = &end
		}
		h.Periods = append(h.Periods, api.PrimaryPeriod{From: at.UTC(), Primaries: primaries, Timeline: timeline})
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("select cluster history: %w", err)
	}
	return h, nil
}
