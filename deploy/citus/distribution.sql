-- A Citus distribution plan for the metrics store (docs/scaling.md): run on the coordinator after
-- `pganalytics-api migrate up`, before the collectors push. Every table of the schema is named
-- below, as distributed, reference or local; a test (server/store, TestCitusPlanMatchesSchema)
-- checks this file against the migrated schema: each distributed table's primary key and unique
-- indexes hold its distribution column, its foreign keys point at a reference table or along the
-- distribution column, and no table is left out.

-- What grows with the fleet, all by collector_id and co-located: one collector's samples, rollups,
-- series, snapshot and status history live on one worker, so a push is a single-shard transaction and a
-- panel of one collector reads one shard. samples stays partitioned by day on every worker.
SELECT create_distributed_table('series', 'collector_id');
SELECT create_distributed_table('samples', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('collector_snapshots', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('collector_status_history', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('collector_configs', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('samples_1m', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('samples_5m', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('collector_counts_1m', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('samples_1h', 'collector_id', colocate_with => 'series');
SELECT create_distributed_table('rollup_dirty', 'collector_id', colocate_with => 'series');

-- Small and joined with everything: a copy on every worker.
SELECT create_reference_table('collectors');

-- local: users refresh_tokens audit_log login_failures login_addresses team_roles
-- local: request_stats alert_states alerting_status rate_limits
-- local: clusters cluster_roles events topology_history
-- local: runbook_runs runbook_records runbook_approvals goose_db_version rollup_state
