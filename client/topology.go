package client

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// ReplicationAt is GET /replication?at=: the clusters as the history holds them at that time.
func (c *Client) ReplicationAt(ctx context.Context, at time.Time) (api.ReplicationResponse, error) {
	var rr api.ReplicationResponse
	q := url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}}
	return rr, c.getJSON(ctx, "/replication", "", q, "replication", &rr)
}

// Clusters is GET /clusters: every cluster's live view.
func (c *Client) Clusters(ctx context.Context) (api.ClustersResponse, error) {
	var cr api.ClustersResponse
	return cr, c.getJSON(ctx, "/clusters", "", nil, "clusters", &cr)
}

// ClusterHistory is GET /clusters/{name}/history: who was primary when between since and until
// (zero: the server's default, the last 24 hours).
func (c *Client) ClusterHistory(ctx context.Context, name string, since, until time.Time) (api.ClusterHistory, error) {
	var h api.ClusterHistory
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
	return h, c.getJSON(ctx, "/clusters/{id}/history", name, q, "cluster history", &h)
}

// EventsQuery selects events for GET /events; zero fields are left out.
type EventsQuery struct {
	Cluster, Instance string
	Kinds             []string
	Since, Until      time.Time
	Limit             int
	Cursor            string // a previous answer's NextCursor
}

// Values encodes q as the query string of GET /events.
func (q EventsQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("cluster", q.Cluster)
	set("instance", q.Instance)
	set("kind", strings.Join(q.Kinds, ","))
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// Events is GET /events: newest first, one page.
func (c *Client) Events(ctx context.Context, q EventsQuery) (api.EventsResponse, error) {
	var er api.EventsResponse
	return er, c.getJSON(ctx, "/events", "", q.Values(), "events", &er)
}
