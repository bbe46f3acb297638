-- Return URLs and metadata (API.md, "Return URLs and metadata"): what the
-- merchant asked for, stored with the payment, passed to its adapter and
-- echoed in the payment and its notifications. The checks hold the API's
-- bounds so a row written by hand cannot grow past them.
ALTER TABLE payments
    ADD COLUMN return_url TEXT CHECK (char_length(return_url) <= 2048),
    ADD COLUMN cancel_url TEXT CHECK (char_length(cancel_url) <= 2048),
    ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(metadata) = 'object' AND pg_column_size(metadata) <= 65536);
