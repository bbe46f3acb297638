-- 20261201120000_quota_token_returned.sql renamed refund_quota_token to
-- return_quota_token in place, and binaries from before that release still
-- call the old name: during a rolling upgrade they could no longer give a
-- token back. The old name comes back as a wrapper of the new function
-- until no such binary runs; dropping it is a pending contract step
-- (docs/upgrades.md).
CREATE FUNCTION refund_quota_token(p_merchant BIGINT, p_order BIGINT) RETURNS BOOLEAN
LANGUAGE sql AS $$
    SELECT return_quota_token(p_merchant, p_order);
$$;
