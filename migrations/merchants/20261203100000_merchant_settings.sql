-- The merchant's own settings (API.md, "The merchant's own settings").
--
-- Where its buyers go back by default when a payment names no URL of its
-- own; at most 2,048 characters, as a payment's URLs.
ALTER TABLE merchants
    ADD COLUMN default_return_url TEXT CHECK (char_length(default_return_url) <= 2048),
    ADD COLUMN default_cancel_url TEXT CHECK (char_length(default_cancel_url) <= 2048),
    -- The webhook secret the last rotation replaced, sealed as the current
    -- one is, and when it stops signing: until then every notification
    -- carries a signature with each secret.
    ADD COLUMN previous_webhook_secret TEXT,
    ADD COLUMN previous_webhook_secret_expires_at TIMESTAMPTZ,
    ADD CONSTRAINT merchants_previous_webhook_secret_check
        CHECK ((previous_webhook_secret IS NULL) = (previous_webhook_secret_expires_at IS NULL));

-- An API key's `revoked_at` may now lie ahead: a key replaced by a rotation
-- with a grace period works until then.
COMMENT ON COLUMN api_keys.revoked_at IS
    'When the key stops working: past for a revoked key, ahead for one in a rotation''s grace period';
