-- Payments and their timeline. Amounts are NUMERIC without a fixed scale so
-- "10.00" comes back as "10.00"; the checks hold the API's bounds.
CREATE TABLE payments (
    id                 BIGSERIAL PRIMARY KEY,
    merchant_id        BIGINT NOT NULL,
    order_id           BIGINT NOT NULL,
    subscription_id    BIGINT NOT NULL,
    alias              TEXT NOT NULL,
    amount             NUMERIC NOT NULL CHECK (amount > 0 AND amount < 1000000000000 AND scale(amount) <= 8),
    price              NUMERIC NOT NULL CHECK (price > 0 AND price < 1000000000000 AND scale(price) <= 8),
    currency           CHAR(3) NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('PAYMENT_PENDING', 'PAYMENT_FINISHED', 'PAYMENT_FAILED')),
    provider_reference TEXT,
    payment_url        TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- An order number is the merchant's own: unique per merchant, not globally.
    UNIQUE (merchant_id, order_id)
);
CREATE INDEX payments_merchant_newest ON payments (merchant_id, id DESC);

CREATE TABLE payment_logs (
    id         BIGSERIAL PRIMARY KEY,
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    event_type TEXT NOT NULL,
    status     TEXT NOT NULL,
    message    TEXT,
    payload    JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payment_logs_payment ON payment_logs (payment_id, id);

-- Idempotency keys per merchant: the first request's fingerprint and, once
-- it finished, its response, replayed to retries for at least 24 hours.
CREATE TABLE idempotency_keys (
    merchant_id     BIGINT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    BYTEA NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    response_status SMALLINT,
    response_body   JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
