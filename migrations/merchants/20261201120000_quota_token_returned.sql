-- A quota token whose payment never came is "returned", not "refunded":
-- refunds are money given back to a buyer, and the two must not share a
-- word. Same function, new name.
ALTER FUNCTION refund_quota_token(BIGINT, BIGINT) RENAME TO return_quota_token;
