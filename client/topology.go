package client

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// ReplicationAt is GET /replication?at=: the clusters as the history holds them at that time.
func (c *Client) ReplicationAt(ctx context.Context, at time.Time) (api.ReplicationResponse, error) {
	var rr api.ReplicationResponse
	q := queryValues{}
	q.time("at", at)
	return rr, c.getJSON(ctx, "/replication", "", url.Values(q), "replication", &rr)
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
	q := queryValues{}
	q.time("since", since)
	q.time("until", until)
	return h, c.getJSON(ctx, "/clusters/{id}/history", name, url.Values(q), "cluster history", &h)
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
	v := queryValues{}
	v.text("cluster", q.Cluster)
	v.text("instance", q.Instance)
	v.text("kind", strings.Join(q.Kinds, ","))
	v.time("since", q.Since)
	v.time("until", q.Until)
	v.count("limit", q.Limit)
	v.text("cursor", q.Cursor)
	return url.Values(v)
}

// Events is GET /events: newest first, one page.
func (c *Client) Events(ctx context.Context, q EventsQuery) (api.EventsResponse, error) {
	var er api.EventsResponse
	return er, c.getJSON(ctx, "/events", "", q.Values(), "events", &er)
}
