-- Failed logins are counted per (account, address), per address and per account, so that a
-- stranger's failures lock out only the stranger: the per-account lock is a last resort that the
-- right password from an address the account logged in from before still passes.

-- +goose Up
CREATE TABLE login_failures (
    scope        text        NOT NULL CHECK (scope IN ('account_address', 'address', 'account')),
    key          text        NOT NULL,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX login_failures_window_idx ON login_failures (window_start);

CREATE TABLE login_addresses (
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip              text        NOT NULL,
    last_success_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, ip)
);

ALTER TABLE users DROP COLUMN failed_logins, DROP COLUMN locked_until;

-- +goose Down
ALTER TABLE users ADD COLUMN failed_logins integer NOT NULL DEFAULT 0, ADD COLUMN locked_until timestamptz;
DROP TABLE login_addresses;
DROP TABLE login_failures;
