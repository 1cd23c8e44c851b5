-- Clusters as the server tracks them (one row per system identifier, with the name it keeps across
-- failovers and the view last compared), the replication events detected between consecutive views,
-- and the history of views that GET /api/v1/replication?at= answers from.

-- +goose Up
CREATE TABLE clusters (
    system_identifier text        PRIMARY KEY,
    name              text        NOT NULL,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL,
    view              jsonb       NOT NULL, -- api.ClusterView
    signature         text        NOT NULL, -- md5 of topology.Signature(view)
    history_at        timestamptz NOT NULL  -- when the last topology_history row was written
);
CREATE INDEX clusters_name_idx ON clusters (name);

-- Append-only; trimmed by retention.
CREATE TABLE events (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                timestamptz NOT NULL,
    kind              text        NOT NULL,
    severity          text        NOT NULL,
    system_identifier text        NOT NULL DEFAULT '', -- '' for collector events
    cluster           text        NOT NULL DEFAULT '',
    instance          text        NOT NULL DEFAULT '',
    message           text        NOT NULL,
    details           jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX events_cluster_at_idx ON events (system_identifier, at);
CREATE INDEX events_at_idx ON events (at);

-- A row whenever a cluster's shape changes, and at least once a minute while it is watched.
CREATE TABLE topology_history (
    system_identifier text        NOT NULL,
    at                timestamptz NOT NULL,
    primaries         text[]      NOT NULL,
    timeline          bigint      NOT NULL,
    view              jsonb       NOT NULL,
    PRIMARY KEY (system_identifier, at)
);
CREATE INDEX topology_history_at_idx ON topology_history (at);

-- +goose Down
DROP TABLE topology_history;
DROP TABLE events;
DROP TABLE clusters;
