-- metrics_for(step_ms): the metrics view at the resolution a panel needs. Grafana's $__interval_ms
-- is the range over the panel's width in points: under a minute the raw samples; from a minute the
-- 1-minute rollups; from an hour the 1-hour rollups. Each rollup row stands at its bucket's start
-- with the bucket's last value (a real sample, as a coarser collection interval would have taken),
-- and the time not rolled up yet (the last minutes) comes from the finer level, down to the raw
-- samples, so a panel never ends early. The function is plain SQL: PostgreSQL inlines it, the
-- panel's filters (name, collector_id, instance, time) reach each branch's indexes, and the branches
-- the step rules out are never run.

-- +goose Up
CREATE VIEW metrics_1m AS
SELECT r.bucket AS "timestamp", se.collector_id::text AS collector_id, se.name, se.labels, se.instance,
       r.last AS value, r.series_id, r.count AS samples
FROM samples_1m r
JOIN series se ON se.collector_id = r.collector_id AND se.id = r.series_id;

CREATE VIEW metrics_1h AS
SELECT r.bucket AS "timestamp", se.collector_id::text AS collector_id, se.name, se.labels, se.instance,
       r.last AS value, r.series_id
FROM samples_1h r
JOIN series se ON se.collector_id = r.collector_id AND se.id = r.series_id;

CREATE VIEW rollup_progress AS
SELECT COALESCE((SELECT done_until FROM rollup_state WHERE level = '1m'), '-infinity') AS minutes_until,
       COALESCE((SELECT done_until FROM rollup_state WHERE level = '1h'), '-infinity') AS hours_until;

-- +goose StatementBegin
CREATE FUNCTION metrics_for(step_ms bigint)
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

-- sample_counts(): how many samples each series stored per minute, from the 1-minute rollups'
-- counts, and counted from the raw samples for the minutes not rolled up yet: what the counting
-- panels (records per minute, samples by metric) read instead of counting every sample.
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

-- +goose Down
DROP FUNCTION sample_counts();
DROP FUNCTION metrics_for(bigint);
DROP VIEW rollup_progress;
DROP VIEW metrics_1h;
DROP VIEW metrics_1m;
