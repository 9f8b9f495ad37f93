-- depends: 0030_case_facts_open_index
-- Daily rollups for `/api/analytics/*` and the dashboard's overview, kept in step in the writer's transaction:
--   case_daily      per tenant, UTC day of the first failure, currency and state: the count and sums of the cases,
--                   once in total and once under each breakdown (category, reason, segment, strategy, provider,
--                   recovered_by: `case_daily_keys`). One row per value of each breakdown rather than per combination
--                   of all of them: a day's rows grow with the sum of the breakdowns' sizes, not with their product.
--                   The state is a key, not a sum, so which states count as open or lost stays in
--                   actors/domain/analytics.py.
--   activity_daily  per tenant, UTC day of the event's `at` and currency: the PaymentFailed and InvoiceRecovered
--                   events, as the daily activity counted them from `events`.
-- The overview summed every case of the tenant (and every failure event) on each load; the rollups hold a fraction
-- of those rows (docs/BENCHMARKS.md). Medians and percentiles do not add up, so they stay exact over the recovered
-- cases alone, through the covering index at the end.
--
-- Why deltas and a flush at commit rather than `UPDATE case_daily` in the row trigger: a shard writes a batch of
-- customers in one transaction, and several shards write at once. A rollup row is shared by every customer of its
-- day (`activity_daily` by every failure of the tenant today), so updating it as each case changes would hold its
-- lock for the rest of the transaction and take the locks in a different order in each transaction: waits, and
-- deadlocks between shards. Instead each change appends its -old/+new delta under its transaction id, and a deferred
-- trigger folds the transaction's deltas into the rollups as it commits, in one order of tables and keys for all.
CREATE TABLE case_daily (
    tenant_id         text   NOT NULL,
    day               date   NOT NULL,
    currency          text   NOT NULL,
    state             text   NOT NULL,
    dimension         text   NOT NULL,  -- 'total' (key '') or a breakdown: 'category', 'reason', …
    key               text   NOT NULL,
    -- a group whose cases all moved elsewhere keeps a row of zeros (readers skip `cases = 0`): deleting it would
    -- lock rows outside the flush's order
    cases             bigint NOT NULL,
    amount_due        bigint NOT NULL,
    recovered_amount  bigint NOT NULL,
    attempts_made     bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, currency, state, dimension, key)
);

CREATE TABLE activity_daily (
    tenant_id         text   NOT NULL,
    day               date   NOT NULL,
    currency          text   NOT NULL,
    failures          bigint NOT NULL,
    failed_amount     bigint NOT NULL,
    recoveries        bigint NOT NULL,
    recovered_amount  bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, currency)
);

-- The groups a case counts in: its total and its value of each breakdown. Also read by gateway/analytics.py for the
-- partial days at a window's edges.
CREATE FUNCTION case_daily_keys(category text, reason text, segment text, strategy text, provider text,
                                recovered_by text) RETURNS TABLE (dimension text, key text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('total', ''), ('category', category), ('reason', reason), ('segment', segment), ('strategy', strategy),
           ('provider', provider), ('recovered_by', recovered_by);
$$;

-- A transaction's changes not yet folded in: one row per case row changed (sign -1 for the old, +1 for the new) and
-- per event, under the transaction's id. Each transaction removes its own before it commits, so no committed row is
-- ever there: nothing to log or to keep after a crash. Read and removed by that id, never scanned.
CREATE UNLOGGED TABLE case_daily_deltas (
    xid               xid8   NOT NULL DEFAULT pg_current_xact_id(),
    sign              integer NOT NULL,
    tenant_id         text   NOT NULL,
    day               date   NOT NULL,
    currency          text   NOT NULL,
    state             text   NOT NULL,
    category          text   NOT NULL,
    reason            text   NOT NULL,
    segment           text   NOT NULL,
    strategy          text   NOT NULL,
    provider          text   NOT NULL,
    recovered_by      text   NOT NULL,
    amount_due        bigint NOT NULL,
    recovered_amount  bigint NOT NULL,
    attempts_made     bigint NOT NULL
);
CREATE INDEX case_daily_deltas_by_xid ON case_daily_deltas (xid);
CREATE UNLOGGED TABLE activity_daily_deltas (
    xid               xid8   NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id         text   NOT NULL,
    day               date   NOT NULL,
    currency          text   NOT NULL,
    failures          bigint NOT NULL,
    failed_amount     bigint NOT NULL,
    recoveries        bigint NOT NULL,
    recovered_amount  bigint NOT NULL
);
CREATE INDEX activity_daily_deltas_by_xid ON activity_daily_deltas (xid);

CREATE FUNCTION case_daily_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO case_daily_deltas (sign, tenant_id, day, currency, state, category, reason, segment, strategy,
                                       provider, recovered_by, amount_due, recovered_amount, attempts_made)
        VALUES (-1, OLD.tenant_id, (OLD.first_failed_at AT TIME ZONE 'UTC')::date, OLD.currency, OLD.state,
                OLD.category, OLD.reason, OLD.segment, OLD.strategy, OLD.provider, OLD.recovered_by,
                OLD.amount_due, OLD.recovered_amount, OLD.attempts_made);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO case_daily_deltas (sign, tenant_id, day, currency, state, category, reason, segment, strategy,
                                       provider, recovered_by, amount_due, recovered_amount, attempts_made)
        VALUES (1, NEW.tenant_id, (NEW.first_failed_at AT TIME ZONE 'UTC')::date, NEW.currency, NEW.state,
                NEW.category, NEW.reason, NEW.segment, NEW.strategy, NEW.provider, NEW.recovered_by,
                NEW.amount_due, NEW.recovered_amount, NEW.attempts_made);
    END IF;
    PERFORM set_config('payrisk.rollups_pending', 'yes', true);
    RETURN NULL;
END $$;

-- An event counts when it is a failure or a recovery with a time (the rule the daily activity read the log by).
CREATE FUNCTION activity_daily_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign integer;
    e events;
BEGIN
    FOREACH sign IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[1] WHEN 'DELETE' THEN ARRAY[-1] ELSE ARRAY[-1, 1] END
    LOOP
        e := CASE WHEN sign < 0 THEN OLD ELSE NEW END;
        CONTINUE WHEN e.event_type NOT IN ('PaymentFailed', 'InvoiceRecovered') OR e.payload->>'at' IS NULL;
        INSERT INTO activity_daily_deltas (tenant_id, day, currency, failures, failed_amount, recoveries,
                                           recovered_amount)
        VALUES (e.tenant_id, ((e.payload->>'at')::timestamptz AT TIME ZONE 'UTC')::date,
                coalesce(e.payload->>'currency', 'unknown'),
                CASE WHEN e.event_type = 'PaymentFailed' THEN sign ELSE 0 END,
                CASE WHEN e.event_type = 'PaymentFailed' THEN sign * coalesce((e.payload->>'amount_due')::bigint, 0)
                     ELSE 0 END,
                CASE WHEN e.event_type = 'InvoiceRecovered' THEN sign ELSE 0 END,
                CASE WHEN e.event_type = 'InvoiceRecovered' THEN sign * coalesce((e.payload->>'amount')::bigint, 0)
                     ELSE 0 END);
    END LOOP;
    PERFORM set_config('payrisk.rollups_pending', 'yes', true);
    RETURN NULL;
END $$;

-- case_facts_refresh (0010) rewrites every case of a customer on each checkpoint: only a change that moves a case
-- to another group or changes a sum is a delta.
CREATE TRIGGER case_facts_case_daily_insert AFTER INSERT ON case_facts
    FOR EACH ROW EXECUTE FUNCTION case_daily_follow();
CREATE TRIGGER case_facts_case_daily_update AFTER UPDATE ON case_facts
    FOR EACH ROW WHEN ((OLD.tenant_id, OLD.first_failed_at, OLD.currency, OLD.state, OLD.category, OLD.reason,
                        OLD.segment, OLD.strategy, OLD.provider, OLD.recovered_by, OLD.amount_due,
                        OLD.recovered_amount, OLD.attempts_made)
                       IS DISTINCT FROM
                       (NEW.tenant_id, NEW.first_failed_at, NEW.currency, NEW.state, NEW.category, NEW.reason,
                        NEW.segment, NEW.strategy, NEW.provider, NEW.recovered_by, NEW.amount_due,
                        NEW.recovered_amount, NEW.attempts_made))
    EXECUTE FUNCTION case_daily_follow();
CREATE TRIGGER case_facts_case_daily_delete AFTER DELETE ON case_facts
    FOR EACH ROW EXECUTE FUNCTION case_daily_follow();

-- events are appended; a payload rewritten (a forgotten customer's) or a row removed is followed all the same
CREATE TRIGGER events_activity_daily_insert AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.event_type IN ('PaymentFailed', 'InvoiceRecovered'))
    EXECUTE FUNCTION activity_daily_follow();
CREATE TRIGGER events_activity_daily_update AFTER UPDATE ON events
    FOR EACH ROW WHEN ((OLD.event_type IN ('PaymentFailed', 'InvoiceRecovered')
                        OR NEW.event_type IN ('PaymentFailed', 'InvoiceRecovered'))
                       AND (OLD.tenant_id, OLD.event_type, OLD.payload)
                           IS DISTINCT FROM (NEW.tenant_id, NEW.event_type, NEW.payload))
    EXECUTE FUNCTION activity_daily_follow();
CREATE TRIGGER events_activity_daily_delete AFTER DELETE ON events
    FOR EACH ROW WHEN (OLD.event_type IN ('PaymentFailed', 'InvoiceRecovered'))
    EXECUTE FUNCTION activity_daily_follow();

-- The transaction's deltas into the rollups, netted per key: always activity_daily then case_daily, each in key
-- order, so two transactions committing at once wait for each other at most, never in a cycle.
CREATE FUNCTION rollups_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('payrisk.rollups_pending', true) IS DISTINCT FROM 'yes' THEN
        RETURN NULL;  -- flushed by an earlier call of this commit
    END IF;
    PERFORM set_config('payrisk.rollups_pending', 'no', true);
    WITH moved AS (DELETE FROM activity_daily_deltas WHERE xid = pg_current_xact_id() RETURNING *)
    INSERT INTO activity_daily AS d
    SELECT tenant_id, day, currency, sum(failures), sum(failed_amount), sum(recoveries), sum(recovered_amount)
      FROM moved GROUP BY tenant_id, day, currency
    HAVING (sum(failures), sum(failed_amount), sum(recoveries), sum(recovered_amount)) <> (0, 0, 0, 0)
     ORDER BY tenant_id, day, currency
    ON CONFLICT (tenant_id, day, currency) DO UPDATE SET
        failures = d.failures + excluded.failures, failed_amount = d.failed_amount + excluded.failed_amount,
        recoveries = d.recoveries + excluded.recoveries,
        recovered_amount = d.recovered_amount + excluded.recovered_amount;
    WITH moved AS (DELETE FROM case_daily_deltas WHERE xid = pg_current_xact_id() RETURNING *)
    INSERT INTO case_daily AS d
    SELECT m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key, sum(m.sign), sum(m.sign * m.amount_due),
           sum(m.sign * m.recovered_amount), sum(m.sign * m.attempts_made)
      FROM moved m CROSS JOIN LATERAL case_daily_keys(m.category, m.reason, m.segment, m.strategy, m.provider,
                                                      m.recovered_by) k
     GROUP BY m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key
    HAVING (sum(m.sign), sum(m.sign * m.amount_due), sum(m.sign * m.recovered_amount),
            sum(m.sign * m.attempts_made)) <> (0, 0, 0, 0)
     ORDER BY m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key
    ON CONFLICT (tenant_id, day, currency, state, dimension, key) DO UPDATE SET
        cases = d.cases + excluded.cases, amount_due = d.amount_due + excluded.amount_due,
        recovered_amount = d.recovered_amount + excluded.recovered_amount,
        attempts_made = d.attempts_made + excluded.attempts_made;
    RETURN NULL;
END $$;

-- Deferred to the commit. A call is queued only while nothing is pending yet (a handful per transaction, not one per
-- delta); the first call flushes, and a change made after a flush (SET CONSTRAINTS … IMMEDIATE) queues another.
CREATE CONSTRAINT TRIGGER activity_daily_deltas_flush AFTER INSERT ON activity_daily_deltas
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (current_setting('payrisk.rollups_pending', true) IS DISTINCT FROM 'yes')
    EXECUTE FUNCTION rollups_flush();
CREATE CONSTRAINT TRIGGER case_daily_deltas_flush AFTER INSERT ON case_daily_deltas
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (current_setting('payrisk.rollups_pending', true) IS DISTINCT FROM 'yes')
    EXECUTE FUNCTION rollups_flush();

-- Time to recover, exact, over the recovered cases only: an index-only range scan of the window.
CREATE INDEX case_facts_recovered ON case_facts (tenant_id, first_failed_at)
    INCLUDE (currency, category, reason, segment, strategy, provider, recovered_by, recovered_at)
    WHERE state = 'recovered' AND recovered_at IS NOT NULL;

-- The rows already there. The triggers above are in place and hold off other writers until this commits, so
-- nothing is counted twice or missed.
INSERT INTO case_daily
SELECT f.tenant_id, (f.first_failed_at AT TIME ZONE 'UTC')::date, f.currency, f.state, k.dimension, k.key,
       count(*), sum(f.amount_due), sum(f.recovered_amount), sum(f.attempts_made)
  FROM case_facts f CROSS JOIN LATERAL case_daily_keys(f.category, f.reason, f.segment, f.strategy, f.provider,
                                                       f.recovered_by) k
 GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO activity_daily
SELECT tenant_id, ((payload->>'at')::timestamptz AT TIME ZONE 'UTC')::date, coalesce(payload->>'currency', 'unknown'),
       count(*) FILTER (WHERE event_type = 'PaymentFailed'),
       coalesce(sum((payload->>'amount_due')::bigint) FILTER (WHERE event_type = 'PaymentFailed'), 0),
       count(*) FILTER (WHERE event_type = 'InvoiceRecovered'),
       coalesce(sum((payload->>'amount')::bigint) FILTER (WHERE event_type = 'InvoiceRecovered'), 0)
  FROM events WHERE event_type IN ('PaymentFailed', 'InvoiceRecovered') AND payload->>'at' IS NOT NULL
 GROUP BY 1, 2, 3;
