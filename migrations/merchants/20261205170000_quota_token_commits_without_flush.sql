-- A taken token commits without waiting for its WAL flush
-- (docs/benchmarks/notes/api.md, "session 29"). What a token protects is
-- decided before the commit and is unaffected: the slot's row lock
-- serialises takers, and the charge is visible to every other session the
-- moment the statement commits. Only the flush is deferred, and it is never
-- deferred past anything that depends on it: the payment the token pays for
-- commits afterwards with the usual flush, and on a server that holds both
-- databases one WAL serves them, so that flush covers the token's commit
-- record too. On a merchants server of its own, the WAL writer flushes it
-- within three times wal_writer_delay (600 ms by default); a crash of that
-- server inside the window loses the charge of a payment that may exist, so
-- the merchant is charged one token fewer, never one more.
--
-- Only the 'taken' path writes; the others commit nothing to flush.
CREATE OR REPLACE FUNCTION take_quota_token(
    p_subscription BIGINT, p_merchant BIGINT, p_order BIGINT,
    OUT outcome TEXT, OUT slot SMALLINT, OUT held_secs DOUBLE PRECISION)
LANGUAGE plpgsql AS $$
DECLARE
    v_slot SMALLINT;
BEGIN
    SELECT extract(epoch FROM now() - c.charged_at) INTO held_secs
    FROM quota_charges c WHERE c.merchant_id = p_merchant AND c.order_id = p_order;
    IF FOUND THEN
        outcome := 'held';
        RETURN;
    END IF;
    PERFORM 1 FROM subscriptions s
    WHERE s.id = p_subscription AND s.merchant_id = p_merchant AND s.active;
    IF NOT FOUND THEN
        outcome := 'invalid';
        RETURN;
    END IF;
    -- A slot nobody holds right now; failing that, wait for a busy one, in
    -- slot order: a slot that filled up while we waited stays locked until
    -- the statement ends, so waiting in any other order lets two callers
    -- each hold the slot the other waits for.
    SELECT q.slot INTO v_slot FROM quota_slots q
    WHERE q.subscription_id = p_subscription AND q.used < q.cap
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT q.slot INTO v_slot FROM quota_slots q
        WHERE q.subscription_id = p_subscription AND q.used < q.cap
        ORDER BY q.slot LIMIT 1 FOR UPDATE;
        IF NOT FOUND THEN
            outcome := 'exhausted';
            RETURN;
        END IF;
    END IF;
    INSERT INTO quota_charges (merchant_id, order_id, subscription_id, slot)
    VALUES (p_merchant, p_order, p_subscription, v_slot)
    ON CONFLICT (merchant_id, order_id) DO NOTHING;
    IF NOT FOUND THEN
        -- Another request charged this order a moment ago.
        outcome := 'held';
        held_secs := 0;
        RETURN;
    END IF;
    UPDATE quota_slots q SET used = q.used + 1
    WHERE q.subscription_id = p_subscription AND q.slot = v_slot;
    -- Until the end of this statement's transaction: its commit.
    PERFORM set_config('synchronous_commit', 'off', true);
    outcome := 'taken';
    slot := v_slot;
END $$;
