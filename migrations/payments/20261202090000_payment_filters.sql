-- Listing filters (API.md, "Listing and filtering payments"): each filter a
-- merchant can narrow to has an index that starts with the merchant, so a
-- filtered page or cursor reads only the rows it shows. `order_id` already
-- has one (the unique constraint).
CREATE INDEX payments_merchant_status_newest ON payments (merchant_id, status, id DESC);
CREATE INDEX payments_merchant_alias_newest ON payments (merchant_id, alias, id DESC);
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at);
