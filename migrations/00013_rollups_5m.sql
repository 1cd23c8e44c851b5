-- A 5-minute rollup level between the minute and the hour (samples_5m, rolled up from samples_1m),
-- and metrics_for choosing the level by the coarsest bucket that is at most about six of the
-- panel's points: the raw samples below a 10 s step, the minutes to 50 s, the 5 minutes to 10 min,
-- the hours beyond. A 6-hour panel (a point per 21.6 s) reads the minutes, a 24-hour one (86 s) the
-- 5 minutes, a 7-day one (10 min) the hours: a few hundred rows per series whatever the range.
-- sample_counts takes the step too, and says how many minutes each of its buckets spans; the
-- per-collector counts the volume panels chart get a rollup of their own (collector_counts_1m: a
-- row per collector and minute, whatever its series) and collector_sample_counts(step_ms).

-- +goose Up
CREATE TABLE samples_5m (LIKE samples_1m INCLUDING ALL);

CREATE TABLE collector_counts_1m (
    collector_id uuid        NOT NULL,
    bucket       timestamptz NOT NULL,
    samples      bigint      NOT NULL,
    PRIMARY KEY (collector_id, bucket)
);
CREATE INDEX collector_counts_1m_bucket_idx ON collector_counts_1m USING brin (bucket);

ALTER TABLE rollup_state DROP CONSTRAINT rollup_state_level_check;
ALTER TABLE rollup_state ADD CONSTRAINT rollup_state_level_check CHECK (level IN ('1m', '5m', '1h'));

CREATE VIEW metrics_5m AS
SELECT r.bucket AS "timestamp", se.collector_id::text AS collector_id, se.name, se.labels, se.instance,
       r.last AS value, r.series_id, r.count AS samples
FROM samples_5m r
JOIN series se ON se.collector_id = r.collector_id AND se.id = r.series_id;

CREATE OR REPLACE VIEW metrics_1h AS
SELECT r.bucket AS "timestamp", se.collector_id::text AS collector_id, se.name, se.labels, se.instance,
       r.last AS value, r.series_id, r.count AS samples
FROM samples_1h r
JOIN series se ON se.collector_id = r.collector_id AND se.id = r.series_id;

CREATE OR REPLACE VIEW rollup_progress AS
SELECT COALESCE((SELECT done_until FROM rollup_state WHERE level = '1m'), '-infinity') AS minutes_until,
       COALESCE((SELECT done_until FROM rollup_state WHERE level = '1h'), '-infinity') AS hours_until,
       COALESCE((SELECT done_until FROM rollup_state WHERE level = '5m'), '-infinity') AS fives_until;

-- Each instant comes from the coarsest level the step allows that has rolled it up, the rest from
-- the finer ones down to the raw samples, so that a panel never ends early.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION metrics_for(step_ms bigint)
RETURNS TABLE ("timestamp" timestamptz, collector_id text, name text, labels jsonb, instance text,
               value double precision, series_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics m
     WHERE step_ms < 10000 OR m."timestamp" >= (SELECT minutes_until FROM rollup_progress)
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics_1m m
     WHERE step_ms >= 10000 AND m."timestamp" < (SELECT minutes_until FROM rollup_progress)
       AND (step_ms < 50000 OR m."timestamp" >= (SELECT fives_until FROM rollup_progress))
       AND (step_ms < 600000 OR m."timestamp" >= (SELECT hours_until FROM rollup_progress))
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics_5m m
     WHERE step_ms >= 50000 AND m."timestamp" < (SELECT fives_until FROM rollup_progress)
       AND (step_ms < 600000 OR m."timestamp" >= (SELECT hours_until FROM rollup_progress))
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics_1h m
     WHERE step_ms >= 600000 AND m."timestamp" < (SELECT hours_until FROM rollup_progress)
$$;
-- +goose StatementEnd

-- sample_counts(step_ms): how many samples each series stored per bucket, and the bucket's width in
-- minutes (a rate per minute is samples / minutes): from the rollups' counts one level coarser
-- than metrics_for reads for the step (counting needs no shape, only totals), and counted from the
-- raw samples for the minutes not rolled up yet.
-- +goose StatementBegin
CREATE FUNCTION sample_counts(step_ms bigint)
RETURNS TABLE ("timestamp" timestamptz, collector_id text, name text, series_id bigint, samples bigint, minutes integer)
LANGUAGE sql STABLE AS $$
    SELECT m."timestamp", m.collector_id, m.name, m.series_id, m.samples::bigint, 1
      FROM metrics_1m m
     WHERE m."timestamp" < (SELECT minutes_until FROM rollup_progress)
       AND (step_ms < 10000 OR m."timestamp" >= (SELECT fives_until FROM rollup_progress))
       AND (step_ms < 50000 OR m."timestamp" >= (SELECT hours_until FROM rollup_progress))
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.series_id, m.samples::bigint, 5
      FROM metrics_5m m
     WHERE step_ms >= 10000 AND m."timestamp" < (SELECT fives_until FROM rollup_progress)
       AND (step_ms < 50000 OR m."timestamp" >= (SELECT hours_until FROM rollup_progress))
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.series_id, m.samples::bigint, 60
      FROM metrics_1h m
     WHERE step_ms >= 50000 AND m."timestamp" < (SELECT hours_until FROM rollup_progress)
    UNION ALL
    SELECT date_trunc('minute', m."timestamp"), m.collector_id, m.name, m.series_id, count(*), 1
      FROM metrics m
     WHERE m."timestamp" >= (SELECT minutes_until FROM rollup_progress)
     GROUP BY 1, 2, 3, 4
$$;
-- +goose StatementEnd

DROP FUNCTION sample_counts();

-- collector_sample_counts(step_ms): how many samples each collector stored per bucket, and the
-- bucket's width in minutes (a rate per minute is samples / minutes): the per-collector rollup a
-- minute a row below a 50 s step, summed into 5 minutes from there (as metrics_for switches to the
-- 5-minute rollups: a 24-hour panel gets 288 points a collector, not 1,440), and the raw samples a
-- minute a row for the minutes not rolled up yet (read series by series, the index that bounds
-- them by time; the series' names are not needed).
-- +goose StatementBegin
CREATE FUNCTION collector_sample_counts(step_ms bigint)
RETURNS TABLE ("timestamp" timestamptz, collector_id text, samples bigint, minutes integer)
LANGUAGE sql STABLE AS $$
    SELECT r.bucket, r.collector_id::text, r.samples, 1
      FROM collector_counts_1m r
     WHERE r.bucket < (SELECT minutes_until FROM rollup_progress)
       AND (step_ms < 50000 OR r.bucket >= (SELECT to_timestamp(floor(extract(epoch FROM minutes_until) / 300) * 300) FROM rollup_progress))
    UNION ALL
    SELECT to_timestamp(floor(extract(epoch FROM r.bucket) / 300) * 300), r.collector_id::text, sum(r.samples)::bigint, 5
      FROM collector_counts_1m r
     WHERE step_ms >= 50000
       AND r.bucket < (SELECT to_timestamp(floor(extract(epoch FROM minutes_until) / 300) * 300) FROM rollup_progress)
     GROUP BY 1, 2
    UNION ALL
    SELECT date_trunc('minute', sa."timestamp"), se.collector_id::text, count(*), 1
      FROM series se
      JOIN samples sa ON sa.collector_id = se.collector_id AND sa.series_id = se.id
     WHERE sa."timestamp" >= (SELECT minutes_until FROM rollup_progress)
     GROUP BY 1, 2
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION collector_sample_counts(bigint);
-- +goose StatementBegin
CREATE FUNCTION sample_counts()
RETURNS TABLE ("timestamp" timestamptz, collector_id text, name text, series_id bigint, samples bigint)
LANGUAGE sql STABLE AS $$
    SELECT m."timestamp", m.collector_id, m.name, m.series_id, m.samples::bigint
      FROM metrics_1m m
     WHERE m."timestamp" < (SELECT minutes_until FROM rollup_progress)
    UNION ALL
    SELECT date_trunc('minute', m."timestamp"), m.collector_id, m.name, m.series_id, count(*)
      FROM metrics m
     WHERE m."timestamp" >= (SELECT minutes_until FROM rollup_progress)
     GROUP BY 1, 2, 3, 4
$$;
-- +goose StatementEnd
DROP FUNCTION sample_counts(bigint);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION metrics_for(step_ms bigint)
RETURNS TABLE ("timestamp" timestamptz, collector_id text, name text, labels jsonb, instance text,
               value double precision, series_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics m
     WHERE step_ms < 60000 OR m."timestamp" >= (SELECT minutes_until FROM rollup_progress)
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics_1m m
     WHERE step_ms >= 60000 AND m."timestamp" < (SELECT minutes_until FROM rollup_progress)
       AND (step_ms < 3600000 OR m."timestamp" >= (SELECT hours_until FROM rollup_progress))
    UNION ALL
    SELECT m."timestamp", m.collector_id, m.name, m.labels, m.instance, m.value, m.series_id
      FROM metrics_1h m
     WHERE step_ms >= 3600000 AND m."timestamp" < (SELECT hours_until FROM rollup_progress)
$$;
-- +goose StatementEnd
DROP VIEW metrics_5m;
DELETE FROM rollup_state WHERE level = '5m';
ALTER TABLE rollup_state DROP CONSTRAINT rollup_state_level_check;
ALTER TABLE rollup_state ADD CONSTRAINT rollup_state_level_check CHECK (level IN ('1m', '1h'));
DROP TABLE collector_counts_1m;
DROP TABLE samples_5m;
