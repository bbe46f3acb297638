-- The payment a claimed idempotency key created, written in the statement
-- that inserts the payment. A retry that takes over the key of a request
-- whose process died finds the payment here and finishes that request
-- (asks the provider, or answers what was recorded) instead of creating
-- another or answering order_exists.
ALTER TABLE idempotency_keys ADD COLUMN payment_id BIGINT;
