-- Refunds (API.md, "Refunds"): money given back on a finished payment,
-- several per payment, never more in all than its price. A refund row is
-- written before its provider is asked, as a payment's is, so a crash
-- between the two leaves a refund to finish rather than money moved
-- without a record.
CREATE TABLE refunds (
    id                 BIGSERIAL PRIMARY KEY,
    payment_id         BIGINT NOT NULL REFERENCES payments (id),
    merchant_id        BIGINT NOT NULL,
    price              NUMERIC NOT NULL CHECK (price > 0 AND price < 1000000000000 AND scale(price) <= 8),
    currency           CHAR(3) NOT NULL,
    reason             TEXT CHECK (reason IN ('requested_by_customer', 'duplicate', 'fraudulent')),
    status             TEXT NOT NULL CHECK (status IN ('REFUND_PENDING', 'REFUND_SUCCEEDED', 'REFUND_FAILED')),
    -- The provider's id of the refund, once it answered.
    provider_reference TEXT CHECK (char_length(provider_reference) <= 255),
    -- Why the provider refused it, as the merchant was told.
    failure_message    TEXT,
    -- The merchant's Idempotency-Key and the fingerprint of its request.
    idempotency_key    TEXT,
    request_hash       BYTEA,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, idempotency_key)
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);
CREATE INDEX refunds_provider_reference ON refunds (provider_reference) WHERE provider_reference IS NOT NULL;

-- The sum of a payment's succeeded refunds, kept with it so a payment is
-- shown and listed without adding its refunds up.
ALTER TABLE payments ADD COLUMN refunded NUMERIC NOT NULL DEFAULT 0
    CHECK (refunded >= 0 AND refunded <= price);

-- Notifications about refunds are the payment's too, one per refund and
-- terminal transition; expiry notifies `payment.expired`.
ALTER TABLE outbox ADD COLUMN refund_id BIGINT REFERENCES refunds (id);
ALTER TABLE outbox DROP CONSTRAINT outbox_event_type_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_type_check CHECK (event_type IN
    ('payment.finished', 'payment.failed', 'payment.expired', 'refund.succeeded', 'refund.failed'));
ALTER TABLE outbox DROP CONSTRAINT outbox_payment_id_event_type_key;
CREATE UNIQUE INDEX outbox_one_per_transition ON outbox (payment_id, event_type, coalesce(refund_id, 0));
