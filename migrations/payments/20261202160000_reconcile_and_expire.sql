-- Reconciliation and expiry (API.md, "Reconciliation and expiry"): a
-- payment left pending is asked of its provider after a while, then again
-- after doubling delays; one still pending long after is expired.
--
-- `reconcile_at` is when a host may next ask about the payment: a host
-- claims a due payment by moving it forward in the statement that picks it,
-- so one host asks at a time and a host that dies holds nothing.
ALTER TABLE payments ADD COLUMN reconcile_at TIMESTAMPTZ;
ALTER TABLE payments ADD COLUMN reconcile_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX payments_pending_age ON payments (created_at) WHERE status = 'PAYMENT_PENDING';

-- When a payment still pending expires, fixed at creation from
-- PAYGATE_PAYMENT_EXPIRY (as Stripe fixes a session's `expires_at`); the
-- payments made before this migration, and rows written by hand, get the
-- default of 24 hours.
ALTER TABLE payments ADD COLUMN expires_at TIMESTAMPTZ;
UPDATE payments SET expires_at = created_at + interval '24 hours';
ALTER TABLE payments ALTER COLUMN expires_at SET DEFAULT now() + interval '24 hours';
ALTER TABLE payments ALTER COLUMN expires_at SET NOT NULL;
CREATE INDEX payments_pending_expiry ON payments (expires_at) WHERE status = 'PAYMENT_PENDING';

ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('PAYMENT_PENDING', 'PAYMENT_FINISHED', 'PAYMENT_FAILED', 'PAYMENT_EXPIRED'));

-- A refund left pending (its provider confirms later, or its request died
-- before the provider answered) is asked about the same way.
ALTER TABLE refunds ADD COLUMN reconcile_at TIMESTAMPTZ;
ALTER TABLE refunds ADD COLUMN reconcile_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX refunds_pending_age ON refunds (created_at) WHERE status = 'REFUND_PENDING';
