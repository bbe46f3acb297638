-- An operator can disable a merchant (API.md, "Admin API"): its keys stop
-- authenticating (within the key cache's few seconds) and nothing else
-- about it changes, so enabling it again restores it as it was.
ALTER TABLE merchants ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- Operators add tokens to a subscription (API.md, "Admin API"). Its limit
-- was fixed because its quota slots' caps are split from it; it may now
-- grow, when the caps grow with it in the same transaction: what is
-- checked, at commit, is that they still add up to the limit.
DROP TRIGGER subscriptions_token_limit_fixed ON subscriptions;
DROP FUNCTION token_limit_is_fixed();
CREATE FUNCTION token_limit_matches_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.token_limit < OLD.token_limit THEN
        RAISE EXCEPTION 'token_limit of subscription % cannot shrink', NEW.id;
    END IF;
    IF (SELECT coalesce(sum(cap), 0) FROM quota_slots WHERE subscription_id = NEW.id)
       <> NEW.token_limit THEN
        RAISE EXCEPTION 'token_limit of subscription % differs from its slots'' caps', NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER subscriptions_token_limit_matches_slots
    AFTER UPDATE OF token_limit ON subscriptions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.token_limit IS DISTINCT FROM NEW.token_limit)
    EXECUTE FUNCTION token_limit_matches_slots();
