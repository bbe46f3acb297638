-- Every inbound webhook, valid or not, and an audit of API requests.
CREATE TABLE inbound_webhooks (
    id          BIGSERIAL PRIMARY KEY,
    request_id  TEXT NOT NULL,
    path        TEXT NOT NULL,
    alias       TEXT,
    headers     JSONB NOT NULL,
    body        BYTEA NOT NULL,
    verdict     TEXT NOT NULL,
    detail      TEXT,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX inbound_webhooks_received ON inbound_webhooks (received_at);
