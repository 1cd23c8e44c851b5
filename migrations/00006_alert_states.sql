-- The alert rules' state as the evaluating API server last stored it (pending, firing, resolved
-- alerts), replacing the per-request evaluation's alert_state.

-- +goose Up
DROP TABLE alert_state;

CREATE TABLE alert_states (
    id       text  PRIMARY KEY, -- rule/severity/labels
    rule     text  NOT NULL,
    severity text  NOT NULL,
    state    text  NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    alert    jsonb NOT NULL
);

CREATE TABLE alerting_status (
    id           integer     PRIMARY KEY CHECK (id = 1),
    evaluated_at timestamptz NOT NULL,
    evaluated_by text        NOT NULL
);

-- +goose Down
DROP TABLE alerting_status;
DROP TABLE alert_states;
CREATE TABLE alert_state (
    name      text        NOT NULL,
    key       text        NOT NULL,
    labels    jsonb       NOT NULL DEFAULT '{}',
    since     timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (name, key)
);
