-- Users, their refresh-token chains and the append-only audit log.

-- +goose Up
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    failed_logins integer     NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Only the JWT id (jti) is kept, never the token. A family is the chain of one login: reusing any
-- already-rotated member revokes the whole family.
CREATE TABLE refresh_tokens (
    id         text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE audit_log (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL DEFAULT '',
    ip      text        NOT NULL DEFAULT '',
    success boolean     NOT NULL,
    detail  jsonb
);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
-- Failed-authentication alert: failures per minute.
CREATE INDEX audit_log_failures_idx ON audit_log (at) WHERE NOT success;

-- +goose StatementBegin
CREATE FUNCTION pganalytics_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

-- Statement-level so that even an UPDATE or DELETE matching no row is refused.
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION pganalytics_audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION pganalytics_audit_log_append_only();
DROP TABLE refresh_tokens;
DROP TABLE users;
