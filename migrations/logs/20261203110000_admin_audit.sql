-- Every action taken through the admin API: who (the admin token's
-- fingerprint, never the token), what, on which object, when, and the
-- object before and after it, secrets left out.
CREATE TABLE admin_audit (
    id     BIGSERIAL PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor  TEXT NOT NULL CHECK (char_length(actor) <= 200),
    action TEXT NOT NULL CHECK (char_length(action) <= 100),
    target TEXT NOT NULL CHECK (char_length(target) <= 200),
    before JSONB,
    after  JSONB
);
