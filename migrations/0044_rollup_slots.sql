-- depends: 0043_case_facts_refresh_by_key
-- The rollups (0040) had one row per tenant, day and currency (`activity_daily`) and per group (`case_daily`), so
-- every shard's transaction folded its deltas into the same few rows of today as it committed, and each waited for
-- the other's commit (COMMIT waiting on a transaction id: ~15 % of PostgreSQL's active time at 1,000 webhooks/s).
-- Each row is now one of 8 slots, chosen by the committing transaction's id: two commits meet on a row one time in
-- 8. Readers already add the rows of a group up (store/analytics.py), so the slots are invisible to them. The key
-- order of the flush (slot last) is still one order for all, so commits never wait on each other in a cycle.
ALTER TABLE activity_daily ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE activity_daily DROP CONSTRAINT activity_daily_pkey,
    ADD CONSTRAINT activity_daily_pkey PRIMARY KEY (tenant_id, day, currency, slot);
ALTER TABLE case_daily ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE case_daily DROP CONSTRAINT case_daily_pkey,
    ADD CONSTRAINT case_daily_pkey PRIMARY KEY (tenant_id, day, currency, state, dimension, key, slot);

CREATE OR REPLACE FUNCTION rollups_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_slot smallint;
BEGIN
    IF current_setting('payrisk.rollups_pending', true) IS DISTINCT FROM 'yes' THEN
        RETURN NULL;  -- flushed by an earlier call of this commit
    END IF;
    PERFORM set_config('payrisk.rollups_pending', 'no', true);
    v_slot := (pg_current_xact_id()::text::bigint % 8)::smallint;
    WITH moved AS (DELETE FROM activity_daily_deltas WHERE xid = pg_current_xact_id() RETURNING *)
    INSERT INTO activity_daily AS d
    SELECT tenant_id, day, currency, sum(failures), sum(failed_amount), sum(recoveries), sum(recovered_amount), v_slot
      FROM moved GROUP BY tenant_id, day, currency
    HAVING (sum(failures), sum(failed_amount), sum(recoveries), sum(recovered_amount)) <> (0, 0, 0, 0)
     ORDER BY tenant_id, day, currency
    ON CONFLICT (tenant_id, day, currency, slot) DO UPDATE SET
        failures = d.failures + excluded.failures, failed_amount = d.failed_amount + excluded.failed_amount,
        recoveries = d.recoveries + excluded.recoveries,
        recovered_amount = d.recovered_amount + excluded.recovered_amount;
    WITH moved AS (DELETE FROM case_daily_deltas WHERE xid = pg_current_xact_id() RETURNING *)
    INSERT INTO case_daily AS d
    SELECT m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key, sum(m.sign), sum(m.sign * m.amount_due),
           sum(m.sign * m.recovered_amount), sum(m.sign * m.attempts_made), v_slot
      FROM moved m CROSS JOIN LATERAL case_daily_keys(m.category, m.reason, m.segment, m.strategy, m.provider,
                                                      m.recovered_by) k
     GROUP BY m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key
    HAVING (sum(m.sign), sum(m.sign * m.amount_due), sum(m.sign * m.recovered_amount),
            sum(m.sign * m.attempts_made)) <> (0, 0, 0, 0)
     ORDER BY m.tenant_id, m.day, m.currency, m.state, k.dimension, k.key
    ON CONFLICT (tenant_id, day, currency, state, dimension, key, slot) DO UPDATE SET
        cases = d.cases + excluded.cases, amount_due = d.amount_due + excluded.amount_due,
        recovered_amount = d.recovered_amount + excluded.recovered_amount,
        attempts_made = d.attempts_made + excluded.attempts_made;
    RETURN NULL;
END $$;
