-- Metric samples: one row per (collector, name, labels) series and one narrow row per sample,
-- range-partitioned by UTC day so that retention drops whole partitions. collector_id is part of
-- every key so the tables can be distributed by it (Citus) or made hypertables (TimescaleDB).
-- Day partitions (samples_pYYYYMMDD) are created by the server (Store.Maintain and on demand by
-- Store.Ingest), never here, so that the schema does not depend on the day it was migrated.

-- +goose Up
CREATE TABLE series (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    collector_id uuid        NOT NULL REFERENCES collectors (id),
    name         text        NOT NULL,
    labels       jsonb       NOT NULL DEFAULT '{}',
    instance     text        GENERATED ALWAYS AS (labels ->> 'instance') STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collector_id, id)
);
-- Identity of a series. md5 keeps the key small whatever the labels' size; jsonb's text form is
-- canonical (key order and spacing normalised), so equal label sets hash equally.
CREATE UNIQUE INDEX series_identity_idx ON series (collector_id, name, md5(labels::text));

CREATE TABLE samples (
    "timestamp"  timestamptz      NOT NULL,
    collector_id uuid             NOT NULL,
    series_id    bigint           NOT NULL,
    value        double precision NOT NULL
) PARTITION BY RANGE ("timestamp");
CREATE INDEX samples_series_idx ON samples (collector_id, series_id, "timestamp");
CREATE INDEX samples_time_idx ON samples USING brin ("timestamp");

-- The relation the deployment plan's validation SQL and the Grafana dashboards query.
-- collector_id is text so that it compares with a plain string literal.
CREATE VIEW metrics AS
SELECT sa."timestamp",
       se.collector_id::text AS collector_id, -- from series: the planner then filters series first
       se.name,
       se.labels,
       se.instance,
       sa.value,
       sa.series_id
FROM samples sa
JOIN series se ON se.collector_id = sa.collector_id AND se.id = sa.series_id;

-- +goose Down
DROP VIEW metrics;
DROP TABLE samples;
DROP TABLE series;
