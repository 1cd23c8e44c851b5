-- Read-only role for the Grafana PostgreSQL datasource of the pgAnalytics dashboards.
--
-- Run as a superuser (or the schema owner) in the metrics store database, after
-- `pganalytics-api migrate`; run it again after an upgrade that adds relations. It is idempotent.
-- The role gets no password here: set one with psql's \password grafana_reader (psql hashes it
-- before sending it) and give it to Grafana through GRAFANA_PGANALYTICS_PASSWORD.
--
-- Least privilege: the relations the dashboards read and no more. Not users, refresh_tokens,
-- alert_state or the raw samples' values, and not collectors.token_id (the id of each collector's
-- current token).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        CREATE ROLE grafana_reader LOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO grafana_reader', current_database());
END
$$;

-- Sessions start read-only with a time limit per statement (defaults a session could change:
-- the grants below are what keeps the role from writing).
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';

GRANT USAGE ON SCHEMA public TO grafana_reader;

-- metrics is a view over series and samples: its owner's rights read them, so SELECT on the view
-- is enough for the panels that use it. series is read directly by the $instance variable, the
-- cardinality panels and the metrics-volume stats.
GRANT SELECT ON metrics, metrics_1m, metrics_5m, metrics_1h, rollup_progress, series, collector_counts_1m TO grafana_reader;
-- The raw samples' times, collectors and series, not their values: what collector_sample_counts
-- counts for the minutes not rolled up yet.
GRANT SELECT ("timestamp", collector_id, series_id) ON samples TO grafana_reader;
GRANT SELECT ON collector_status_history, collector_configs, audit_log, request_stats TO grafana_reader;
GRANT SELECT (id, name, hostname, registered_at, deleted_at, last_push_at, version, instances,
              interval_seconds, buffer_utilization, buffer_dropped_total,
              collection_failures_total, collections_total)
    ON collectors TO grafana_reader;
