-- What refunds hold of a payment's price: its succeeded refunds and its
-- pending ones (a failed refund gives its part back). Kept on the payment
-- row, a refund is reserved by one statement that locks the row and adds
-- to it: a reservation that waited for the lock reads the newer row, the
-- one the refund before it committed. Adding up the pending refunds
-- instead needed a second statement, with a snapshot taken after the
-- lock, in an explicit transaction.
ALTER TABLE payments ADD COLUMN reserved NUMERIC NOT NULL DEFAULT 0;
UPDATE payments p SET reserved = p.refunded + coalesce(
        (SELECT sum(r.price) FROM refunds r
         WHERE r.payment_id = p.id AND r.status = 'REFUND_PENDING'), 0)
    WHERE p.refunded > 0
       OR EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id AND r.status = 'REFUND_PENDING');
ALTER TABLE payments ADD CONSTRAINT payments_reserved_check
    CHECK (refunded <= reserved AND reserved <= price);
