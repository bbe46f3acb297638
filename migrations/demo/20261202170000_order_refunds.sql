-- The shop gives an order's money back (issue 15, item 7): a finished
-- order is refunded whole through paygate's refunds API, and turns
-- ORDER_REFUNDED when paygate's signed `refund.succeeded` arrives.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
    ('ORDER_PENDING', 'ORDER_FINISHED', 'ORDER_FAILED', 'ORDER_REFUNDED'));
-- The refund paygate answered with, once asked.
ALTER TABLE orders ADD COLUMN refund_id BIGINT;
