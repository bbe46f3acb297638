-- The reconciler gives a token back only while its charge is still the one
-- it examined. Between its look at a stale charge and its return, a request
-- for the same order may take the charge over (PAYGATE_REQUEST_LEASE), which
-- refreshes charged_at: that request's payment is on its way, and returning
-- the token would leave the payment without one. The charge is locked while
-- checked, so a take-over waits for the return or finds the charge gone
-- (and a retry of its request takes a new token). return_quota_token stays for a
-- request's own returns and for the expiry of pending payments.
CREATE FUNCTION return_stale_quota_token(p_merchant BIGINT, p_order BIGINT, p_charged_at TIMESTAMPTZ)
RETURNS BOOLEAN
LANGUAGE sql AS $$
    SELECT CASE WHEN EXISTS (
               SELECT 1 FROM quota_charges
               WHERE merchant_id = p_merchant AND order_id = p_order
                 AND charged_at = p_charged_at AND NOT confirmed
               FOR UPDATE)
           THEN return_quota_token(p_merchant, p_order)
           ELSE false END;
$$;
