-- Merchant notifications waiting to be published (the transactional outbox).
-- A status change, its timeline row and its outbox row commit together.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    payment_id    BIGINT NOT NULL REFERENCES payments (id),
    event_id      UUID NOT NULL UNIQUE,
    event_type    TEXT NOT NULL CHECK (event_type IN ('payment.finished', 'payment.failed')),
    payload       JSONB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'LOG_PENDING'
                  CHECK (status IN ('LOG_PENDING', 'LOG_PROCESSING', 'LOG_RETRYING', 'LOG_SUCCESS', 'LOG_FAILED')),
    attempts      INT NOT NULL DEFAULT 0,
    next_retry_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One notification per terminal transition of a payment.
    UNIQUE (payment_id, event_type)
);
CREATE INDEX outbox_due ON outbox (next_retry_at) WHERE status IN ('LOG_PENDING', 'LOG_RETRYING');
CREATE INDEX payments_provider_reference ON payments (provider_reference) WHERE provider_reference IS NOT NULL;
