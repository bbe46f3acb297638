-- A charge whose payment exists is "confirmed": "settled" is what the
-- outbox does with a notification's delivery attempt, and a word means one
-- thing. This is the expand step of the rename (docs/upgrades.md): binaries
-- of the previous release read and write `settled`, this one `confirmed`,
-- and both run against this database during a rolling upgrade, so the
-- trigger keeps the two columns equal whichever one a writer sets. The
-- contract step drops `settled`, its index and the trigger once no binary
-- of the previous release runs.
--
-- take_quota_token and return_quota_token neither read nor write either
-- column: a new charge is unconfirmed by both columns' defaults, and a
-- returned one is deleted.
ALTER TABLE quota_charges ADD COLUMN confirmed BOOLEAN NOT NULL DEFAULT FALSE;

CREATE FUNCTION quota_charges_confirmed_is_settled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Both default to FALSE, so a TRUE in either is what the writer set.
        NEW.confirmed := NEW.confirmed OR NEW.settled;
    ELSIF NEW.confirmed IS DISTINCT FROM OLD.confirmed THEN
        NEW.settled := NEW.confirmed;
    ELSE
        NEW.confirmed := NEW.settled;
    END IF;
    NEW.settled := NEW.confirmed;
    RETURN NEW;
END $$;

CREATE TRIGGER quota_charges_confirmed_is_settled
    BEFORE INSERT OR UPDATE ON quota_charges
    FOR EACH ROW EXECUTE FUNCTION quota_charges_confirmed_is_settled();

UPDATE quota_charges SET confirmed = TRUE WHERE settled;

-- The reconciler's scan, as quota_charges_unsettled served it; that index
-- goes with the `settled` column in the contract step.
CREATE INDEX quota_charges_unconfirmed ON quota_charges (charged_at) WHERE NOT confirmed;
