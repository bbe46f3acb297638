-- The demo shop's orders. The shop is a merchant of paygate like any other:
-- it only reaches payments through the public API, so nothing here refers
-- to the payments table; payment_id is the id paygate answered with.
CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL,
    quantity    INT NOT NULL CHECK (quantity > 0),
    alias       TEXT NOT NULL,
    price       NUMERIC NOT NULL CHECK (price > 0),
    currency    CHAR(3) NOT NULL,
    status      TEXT NOT NULL DEFAULT 'ORDER_PENDING'
                CHECK (status IN ('ORDER_PENDING', 'ORDER_FINISHED', 'ORDER_FAILED')),
    payment_id  BIGINT,
    payment_url TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Notifications the shop has acted on, by their webhook-id (the same on
-- every retry), so a redelivery changes nothing.
CREATE TABLE order_notifications (
    webhook_id  TEXT PRIMARY KEY,
    order_id    BIGINT,
    event_type  TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
