-- Registered collectors, their configuration, their latest replication snapshot and the history of
-- their self-reported counters (for the collection-failure-ratio alert).

-- +goose Up
CREATE TABLE collectors (
    id                        uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    name                      text             NOT NULL,
    hostname                  text             NOT NULL,
    -- jti of the collector's current JWT; NULL once deregistered (revoked).
    token_id                  text,
    registered_at             timestamptz      NOT NULL DEFAULT now(),
    deleted_at                timestamptz,
    last_push_at              timestamptz,
    -- Latest status the collector reported about itself (api.CollectorStatus).
    version                   text             NOT NULL DEFAULT '',
    instances                 integer          NOT NULL DEFAULT 0,
    interval_seconds          double precision NOT NULL DEFAULT 0,
    buffer_utilization        double precision NOT NULL DEFAULT 0,
    buffer_dropped_total      bigint           NOT NULL DEFAULT 0,
    collection_failures_total bigint           NOT NULL DEFAULT 0,
    collections_total         bigint           NOT NULL DEFAULT 0
);
-- A name may be reused once its previous owner is deregistered.
CREATE UNIQUE INDEX collectors_active_name_idx ON collectors (name) WHERE deleted_at IS NULL;

CREATE TABLE collector_configs (
    collector_id           uuid        PRIMARY KEY REFERENCES collectors (id) ON DELETE CASCADE,
    interval_seconds       integer     NOT NULL CHECK (interval_seconds BETWEEN 1 AND 3600),
    pg_replication_enabled boolean     NOT NULL,
    query_timeout_seconds  integer     NOT NULL CHECK (query_timeout_seconds BETWEEN 1 AND 3600),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text        NOT NULL
);

CREATE TABLE collector_snapshots (
    collector_id uuid        PRIMARY KEY REFERENCES collectors (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL,
    collected_at timestamptz NOT NULL,
    snapshot     jsonb       NOT NULL
);

CREATE TABLE collector_status_history (
    collector_id              uuid        NOT NULL REFERENCES collectors (id) ON DELETE CASCADE,
    at                        timestamptz NOT NULL,
    collections_total         bigint      NOT NULL,
    collection_failures_total bigint      NOT NULL,
    PRIMARY KEY (collector_id, at)
);

-- +goose Down
DROP TABLE collector_status_history;
DROP TABLE collector_snapshots;
DROP TABLE collector_configs;
DROP TABLE collectors;
