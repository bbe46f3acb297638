-- A merchant's own account at a provider (its own Stripe keys, say): the
-- config and secrets that its payments and refunds on that alias use, in
-- place of the alias's shared account, setting by setting. Secrets are
-- sealed under PAYGATE_SECRETS_KEY (host/src/sealing.rs), each bound to its
-- merchant, alias and name, so a sealed value copied to another row or
-- name does not open.
CREATE TABLE merchant_provider_accounts (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    alias       TEXT NOT NULL,
    config      JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    secrets     JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(secrets) = 'object'),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, alias)
);
