-- What every API server reports about itself, per minute, and the alerts' firing state, so that all
-- servers behind a load balancer evaluate the same alerts with the same "since".

-- +goose Up
CREATE TABLE request_stats (
    server          text             NOT NULL,
    minute          timestamptz      NOT NULL,
    requests        bigint           NOT NULL DEFAULT 0,
    rate_limited    bigint           NOT NULL DEFAULT 0,
    auth_failures   bigint           NOT NULL DEFAULT 0,
    server_errors   bigint           NOT NULL DEFAULT 0,
    db_errors       bigint           NOT NULL DEFAULT 0,
    duration_p95_ms double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, server)
);

CREATE TABLE alert_state (
    name      text        NOT NULL,
    -- Canonical form of the alert's labels; '' for a global alert.
    key       text        NOT NULL,
    labels    jsonb       NOT NULL DEFAULT '{}',
    since     timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (name, key)
);

-- +goose Down
DROP TABLE alert_state;
DROP TABLE request_stats;
