-- What refunds hold of a payment's price: its succeeded refunds and its
-- pending ones (a failed refund gives its part back). Kept on the payment
-- row, a refund is reserved by one statement that locks the row, checks
-- what is left and inserts the refund: a reservation that waited for the
-- lock reads the newer row, the one the refund before it committed.
-- Adding up the pending refunds instead needed a second statement, with a
-- snapshot taken after the lock, in an explicit transaction.
--
-- The refunds table keeps the column in step (triggers, not code), so the
-- previous release, which writes refunds without knowing of it, keeps it
-- right during a rolling upgrade: a new refund adds its price, a pending
-- one that fails takes it back. Succeeded refunds stay in it.
ALTER TABLE payments ADD COLUMN reserved NUMERIC NOT NULL DEFAULT 0;
UPDATE payments p SET reserved = p.refunded + coalesce(
        (SELECT sum(r.price) FROM refunds r
         WHERE r.payment_id = p.id AND r.status = 'REFUND_PENDING'), 0)
    WHERE p.refunded > 0
       OR EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id AND r.status = 'REFUND_PENDING');
ALTER TABLE payments ADD CONSTRAINT payments_reserved_check
    CHECK (refunded <= reserved AND reserved <= price);

CREATE FUNCTION refund_reserves() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE payments SET reserved = reserved + NEW.price WHERE id = NEW.payment_id;
    ELSIF OLD.status = 'REFUND_PENDING' AND NEW.status = 'REFUND_FAILED' THEN
        UPDATE payments SET reserved = reserved - NEW.price WHERE id = NEW.payment_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER refunds_reserve AFTER INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION refund_reserves();
CREATE TRIGGER refunds_release AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (OLD.status = 'REFUND_PENDING' AND NEW.status = 'REFUND_FAILED')
    EXECUTE FUNCTION refund_reserves();
