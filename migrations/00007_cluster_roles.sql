-- Each cluster's primary and timeline as the alert evaluation last saw them, so that a change of
-- primary or timeline (a failover, a promotion) is an alert that stays firing for a while.

-- +goose Up
CREATE TABLE cluster_roles (
    cluster              text        PRIMARY KEY, -- system identifier
    primary_address      text        NOT NULL,
    timeline             bigint      NOT NULL,
    primary_changed_at   timestamptz,             -- NULL until the primary changes
    previous_address     text,
    timeline_changed_at  timestamptz,
    previous_timeline    bigint,
    seen_at              timestamptz NOT NULL
);

-- +goose Down
DROP TABLE cluster_roles;
