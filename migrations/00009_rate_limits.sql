-- Rate-limit buckets shared by every API server on this store, in the generic cell rate algorithm's
-- form: one theoretical arrival time per key (a principal or a client IP); a key whose tat has
-- passed has a full bucket, so its row may go (DeleteExpiredRateLimits). UNLOGGED: no WAL for a
-- write on every request; after a crash or on a promoted standby the table is empty, i.e. every
-- bucket is full again, which is harmless.

-- +goose Up
CREATE UNLOGGED TABLE rate_limits (
    key text        PRIMARY KEY,
    tat timestamptz NOT NULL
);

-- +goose Down
DROP TABLE rate_limits;
