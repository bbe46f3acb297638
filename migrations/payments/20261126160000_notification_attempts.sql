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

-- Rows published (or being delivered) whose lease may run out: the producer
-- republishes them when it does, after a crash or a lost message.
CREATE INDEX outbox_leased ON outbox (claimed_until) WHERE status = 'LOG_PROCESSING';
