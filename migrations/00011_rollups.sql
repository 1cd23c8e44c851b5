-- Rollups of the samples the server maintains incrementally, for reads over long ranges: per
-- series and minute (samples_1m) and hour (samples_1h), the min, max, sum, count and last value.
-- rollup_state says up to when each level is complete; rollup_dirty lists the hours late samples
-- (a spool delivered after an outage) touched, recomputed by the next maintenance.

-- +goose Up
CREATE TABLE samples_1m (
    collector_id uuid             NOT NULL,
    series_id    bigint           NOT NULL,
    bucket       timestamptz      NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    sum          double precision NOT NULL,
    count        integer          NOT NULL,
    last         double precision NOT NULL,
    last_at      timestamptz      NOT NULL,
    PRIMARY KEY (collector_id, series_id, bucket)
);
CREATE INDEX samples_1m_bucket_idx ON samples_1m USING brin (bucket);

CREATE TABLE samples_1h (LIKE samples_1m INCLUDING ALL);

CREATE TABLE rollup_state (
    level      text        PRIMARY KEY CHECK (level IN ('1m', '1h')),
    done_until timestamptz NOT NULL
);

CREATE TABLE rollup_dirty (
    collector_id uuid        NOT NULL,
    hour         timestamptz NOT NULL,
    PRIMARY KEY (collector_id, hour)
);

-- +goose Down
DROP TABLE rollup_dirty;
DROP TABLE rollup_state;
DROP TABLE samples_1h;
DROP TABLE samples_1m;
