-- Failed notifications, newest first, for the admin API's list and bulk
-- replay: a few rows among millions of delivered ones. Only failed rows are
-- indexed, so the index stays as small as the dead-letter backlog.
CREATE INDEX outbox_failed ON outbox (id DESC) WHERE status = 'LOG_FAILED';
