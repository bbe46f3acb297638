-- Provider aliases (`stripe`, `sandbox`, ...) and the plugins bound to them.
-- Plugin settings and secret references live in each plugin's spec.
CREATE TABLE provider_aliases (
    alias           TEXT PRIMARY KEY CHECK (alias ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    provider_plugin TEXT NOT NULL,
    verifier_plugin TEXT,
    available       BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
