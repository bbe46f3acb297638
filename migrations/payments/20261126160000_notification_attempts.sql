-- Every delivery attempt of a merchant notification: when, what the
-- merchant's endpoint answered, how long it took, what went wrong.
CREATE TABLE notification_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL REFERENCES outbox (id),
    attempt     INT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status_code SMALLINT,
    latency_ms  INT NOT NULL,
    error       TEXT,
    UNIQUE (outbox_id, attempt)
);

-- Leased rows (claimed, published or being delivered), by expiry: the
-- producer republishes those whose lease ran out, after a crash or a lost
-- message. Partial on the lease, not on the status: a status-partial index
-- looks empty to the planner right after a burst of claims and would be
-- chosen over the primary key for single-row updates.
CREATE INDEX outbox_leased ON outbox (claimed_until) WHERE claimed_until IS NOT NULL;
