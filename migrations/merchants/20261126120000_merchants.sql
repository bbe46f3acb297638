-- Merchants, their API keys (only the SHA-256 of a key is stored) and their
-- subscriptions (the quota of payments they may create).
CREATE TABLE merchants (
    id                     BIGSERIAL PRIMARY KEY,
    name                   TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    callback_url           TEXT,
    -- The HMAC key of merchant notifications; it must be readable to sign.
    webhook_secret         TEXT NOT NULL,
    default_currency       CHAR(3) NOT NULL DEFAULT 'EUR',
    require_signed_writes  BOOLEAN NOT NULL DEFAULT FALSE,
    request_signing_secret TEXT,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    key_hash    BYTEA NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    scope       TEXT NOT NULL CHECK (scope IN ('write', 'read')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE subscriptions (
    id          BIGSERIAL PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    plan        TEXT NOT NULL DEFAULT 'standard',
    token_limit BIGINT NOT NULL CHECK (token_limit >= 0),
    tokens_used BIGINT NOT NULL DEFAULT 0 CHECK (tokens_used >= 0 AND tokens_used <= token_limit),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_merchant ON subscriptions (merchant_id);
