-- The demo shop's tables move to the shop's own database
-- (migrations/demo/); the payments database is paygate's alone.
-- 20261126170000_orders.sql stays as it was: applied migrations are
-- history, and sqlx refuses a database whose applied migration is missing.
--
-- An installation that never ran the demo shop has them empty: they go.
-- One that did keeps both, rows and all, because an upgrade must never
-- delete data it did not write for the gateway: the shop now reads its own
-- database, and an operator who wants the old orders there copies them
-- (pg_dump -t orders -t order_notifications) and drops these by hand.
DO $$
BEGIN
    IF to_regclass('orders') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM orders)
       AND NOT EXISTS (SELECT 1 FROM order_notifications) THEN
        DROP TABLE order_notifications;
        DROP TABLE orders;
    END IF;
END
$$;
