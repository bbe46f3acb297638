-- Quota in slots, and one charge per order.
--
-- A subscription's tokens are split over 16 slots whose caps add up to its
-- token_limit. Concurrent payments of one merchant lock different rows, so
-- their commits share WAL flushes instead of queueing behind one row's lock,
-- and the total still never passes the limit.
--
-- Every token taken is a row of quota_charges, keyed by the order it pays for.
-- Payments live in another database, so a charge and its payment cannot commit
-- together: a charge whose order has no payment after a grace period (the host
-- died in between), or only a payment whose creation failed, is given back by
-- the reconciler; one whose payment exists is marked settled and not looked at
-- again.
CREATE TABLE quota_slots (
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id),
    slot            SMALLINT NOT NULL CHECK (slot BETWEEN 0 AND 15),
    cap             BIGINT NOT NULL CHECK (cap >= 0),
    used            BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= cap),
    PRIMARY KEY (subscription_id, slot)
);

CREATE TABLE quota_charges (
    merchant_id     BIGINT NOT NULL,
    order_id        BIGINT NOT NULL,
    subscription_id BIGINT NOT NULL,
    slot            SMALLINT NOT NULL,
    charged_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (merchant_id, order_id)
);
CREATE INDEX quota_charges_unsettled ON quota_charges (charged_at) WHERE NOT settled;

-- Tokens already used stay in slot 0, whose cap grows by as many; the rest of
-- the limit is spread evenly.
INSERT INTO quota_slots (subscription_id, slot, cap, used)
SELECT s.id, g.slot,
       (s.token_limit - s.tokens_used) / 16
         + CASE WHEN g.slot < (s.token_limit - s.tokens_used) % 16 THEN 1 ELSE 0 END
         + CASE WHEN g.slot = 0 THEN s.tokens_used ELSE 0 END,
       CASE WHEN g.slot = 0 THEN s.tokens_used ELSE 0 END
FROM subscriptions s CROSS JOIN generate_series(0, 15) AS g (slot);

ALTER TABLE subscriptions DROP COLUMN tokens_used;

-- Every new subscription gets its slots, whoever inserts it.
CREATE FUNCTION quota_slots_of_new_subscription() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quota_slots (subscription_id, slot, cap)
    SELECT NEW.id, g.slot,
           NEW.token_limit / 16 + CASE WHEN g.slot < NEW.token_limit % 16 THEN 1 ELSE 0 END
    FROM generate_series(0, 15) AS g (slot);
    RETURN NEW;
END $$;

CREATE TRIGGER subscriptions_quota_slots AFTER INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION quota_slots_of_new_subscription();

-- The limit is split at insert; changing it would need its slots re-split.
CREATE FUNCTION token_limit_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'token_limit of subscription % cannot change; create a new subscription', OLD.id;
END $$;

CREATE TRIGGER subscriptions_token_limit_fixed BEFORE UPDATE OF token_limit ON subscriptions
    FOR EACH ROW WHEN (OLD.token_limit IS DISTINCT FROM NEW.token_limit)
    EXECUTE FUNCTION token_limit_is_fixed();

-- Takes one token for (merchant, order) in one statement, so one commit.
-- outcome: 'taken' (slot set), 'held' (a charge for this order exists;
-- held_secs is its age), 'exhausted', or 'invalid' (not the merchant's
-- active subscription).
CREATE FUNCTION take_quota_token(
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
    -- A slot nobody holds right now; failing that, wait for a busy one.
    SELECT q.slot INTO v_slot FROM quota_slots q
    WHERE q.subscription_id = p_subscription AND q.used < q.cap
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT q.slot INTO v_slot FROM quota_slots q
        WHERE q.subscription_id = p_subscription AND q.used < q.cap
        ORDER BY random() LIMIT 1 FOR UPDATE;
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
    outcome := 'taken';
    slot := v_slot;
END $$;

-- Gives back the token of (merchant, order), if it is still charged.
CREATE FUNCTION refund_quota_token(p_merchant BIGINT, p_order BIGINT) RETURNS BOOLEAN
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM quota_charges
        WHERE merchant_id = p_merchant AND order_id = p_order
        RETURNING subscription_id, slot
    ), given_back AS (
        UPDATE quota_slots q SET used = q.used - 1
        FROM gone WHERE q.subscription_id = gone.subscription_id AND q.slot = gone.slot
        RETURNING 1
    )
    SELECT count(*) = 1 FROM given_back;
$$;
