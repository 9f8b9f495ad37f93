-- depends: 0041_web_session_api_keys
-- Indexes that keep the decision path's statements keyed when PostgreSQL has no statistics for these tables (a
-- fresh installation, a burst before autovacuum's first ANALYZE). Without statistics the planner assumes that
-- `fired_at IS NULL AND cancelled_at IS NULL` (or `sent_at IS NULL AND dead_at IS NULL`) matches almost nothing and
-- prefers scanning every pending row through a partial index to a lookup by key: a batch that cancelled 100 timers
-- read all 20,000 pending ones, an outbox claim of 50 read 400 million (tests/integration/test_query_plans.py).

-- `timers_due` serves the scan by due time only (the scheduler's claim, `due_at <= …`, implies the extra clause);
-- with the same predicate as `timers_one_pending` it was a candidate for every lookup of a pending timer by key.
CREATE INDEX timers_due_by_time ON timers (due_at)
    WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at IS NOT NULL;
DROP INDEX timers_due;
ALTER INDEX timers_due_by_time RENAME TO timers_due;

-- The outbox claim takes the oldest due rows in (available_at, outbox_id) order: the index gives that order, so a
-- claim of 50 reads about 50 rows instead of sorting every due one.
CREATE INDEX outbox_pending_in_order ON outbox (available_at, outbox_id) WHERE sent_at IS NULL AND dead_at IS NULL;
DROP INDEX outbox_pending;
ALTER INDEX outbox_pending_in_order RENAME TO outbox_pending;

-- The leases in flight (a customer with an email leased and unsent gets no second one meanwhile), found by lease
-- time instead of among every pending row.
CREATE INDEX outbox_leased ON outbox (claimed_at) WHERE sent_at IS NULL AND dead_at IS NULL AND claimed_at IS NOT NULL;
