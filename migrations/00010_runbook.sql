-- Shared runbook runs: the deployment team's runs, their audit records and approvals, and the
-- team roles (deployment lead, database lead, …) that approvals are asked of. A run's state is
-- the executor's JSON (secrets already redacted by pgactl); the lease columns say who executes it
-- right now: only the holder of the token (its SHA-256 is kept, never the token) may write, and a
-- lease nobody renews expires so that another operator can resume the run.

-- +goose Up
CREATE TABLE team_roles (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    text NOT NULL CHECK (role IN ('deployment-lead', 'database-lead', 'infrastructure-lead',
                                          'collector-lead', 'security-lead', 'sre-lead')),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE runbook_runs (
    id               text        PRIMARY KEY,
    started_by       text        NOT NULL,  -- the API user who started it
    status           text        NOT NULL,
    state            jsonb       NOT NULL,
    version          bigint      NOT NULL DEFAULT 1,  -- bumped on every change, for the live stream
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    lease_token_hash bytea,
    lease_user       text,                  -- the API user executing it
    lease_holder     text,                  -- where: pgactl's operator and host
    lease_expires_at timestamptz
);
CREATE INDEX runbook_runs_updated_idx ON runbook_runs (updated_at DESC);

CREATE TABLE runbook_records (
    id      bigserial   PRIMARY KEY,
    run_id  text        NOT NULL REFERENCES runbook_runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    by_user text        NOT NULL,
    record  jsonb       NOT NULL
);
CREATE INDEX runbook_records_run_idx ON runbook_records (run_id, id);

CREATE TABLE runbook_approvals (
    id       bigserial   PRIMARY KEY,
    run_id   text        NOT NULL REFERENCES runbook_runs (id) ON DELETE CASCADE,
    phase    text        NOT NULL,
    step     text        NOT NULL,
    attempt  integer     NOT NULL,  -- the approval request it answers (a step asked again starts over)
    decision text        NOT NULL CHECK (decision IN ('approved', 'rejected')),
    by_user  text        NOT NULL,
    roles    text[]      NOT NULL,  -- the approver's team roles at the time
    comment  text        NOT NULL DEFAULT '',
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runbook_approvals_run_idx ON runbook_approvals (run_id, id);

-- +goose Down
DROP TABLE runbook_approvals;
DROP TABLE runbook_records;
DROP TABLE runbook_runs;
DROP TABLE team_roles;
