-- depends: 0042_plans_without_statistics
-- case_facts_refresh (0010) rewrote every case of the customer, and deleted the cases a checkpoint no longer counts
-- with one statement per checkpoint even when there were none (almost always): on a table without statistics its
-- cached plan found the customer's rows through `case_facts_by_first_failure` (tenant first, the customer third), reading every case of the tenant
-- for each checkpoint written — a batch of customers cost more with every case stored. Now the removed keys are
-- found first (from the old state, no table read) and only those are deleted, each by its whole primary key; and
-- only the cases whose JSON changed are written again (a decision changes one case; a customer may hold dozens).
CREATE OR REPLACE FUNCTION case_facts_refresh(p_tenant text, p_stream text, p_old jsonb, p_state jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    gone text;
BEGIN
    FOR gone IN SELECT c.key FROM jsonb_each(coalesce(p_old->'cases', '{}'::jsonb)) c
                 WHERE (p_state->'cases'->c.key->>'first_failed_at') IS NULL LOOP
        DELETE FROM case_facts WHERE tenant_id = p_tenant AND customer_id = p_stream AND invoice_id = gone;
    END LOOP;
    INSERT INTO case_facts (tenant_id, customer_id, invoice_id, state, amount_due, currency, attempts_made,
                                 max_attempts, category, reason, segment, strategy_id, strategy_version, strategy,
                                 provider, recovered_amount, recovered_by, first_failed_at, last_failed_at,
                                 recovered_at, closed_reason, next_action, explanation)
    SELECT p_tenant, p_stream, c.key, c.value->>'state',
           coalesce((c.value->>'amount_due')::bigint, 0),
           coalesce(c.value->>'currency', 'unknown'),
           coalesce((c.value->>'attempts_made')::int, 0),
           (c.value->>'max_attempts')::int,
           coalesce(c.value->'classification'->>'category', 'unclassified'),
           coalesce(c.value->'classification'->>'reason', 'unknown'),
           coalesce(c.value->'strategy'->>'segment', 'none'),
           c.value->'strategy'->>'id', c.value->'strategy'->>'version',
           coalesce((c.value->'strategy'->>'id') || '@' || (c.value->'strategy'->>'version'), 'none'),
           coalesce(c.value->>'provider',
                    CASE WHEN position(':' IN p_stream) > 0 THEN split_part(p_stream, ':', 1) END, 'stripe'),
           coalesce((c.value->>'recovered_amount')::bigint, 0),
           CASE WHEN c.value->>'state' = 'recovered'
                THEN coalesce(c.value->>'recovered_credit', c.value->>'recovered_via', 'unknown')
                ELSE 'open' END,
           (c.value->>'first_failed_at')::timestamptz,
           (c.value->>'last_failed_at')::timestamptz,
           (c.value->>'recovered_at')::timestamptz,
           c.value->>'closed_reason', c.value->'next_action', c.value->>'explanation'
      FROM jsonb_each(coalesce(p_state->'cases', '{}'::jsonb)) c
     WHERE c.value->>'first_failed_at' IS NOT NULL
       AND (p_old->'cases'->c.key) IS DISTINCT FROM c.value  -- a case the checkpoint did not change stays as it is
    ON CONFLICT (tenant_id, customer_id, invoice_id) DO UPDATE SET
        state = excluded.state, amount_due = excluded.amount_due, currency = excluded.currency,
        attempts_made = excluded.attempts_made, max_attempts = excluded.max_attempts,
        category = excluded.category, reason = excluded.reason, segment = excluded.segment,
        strategy_id = excluded.strategy_id, strategy_version = excluded.strategy_version,
        strategy = excluded.strategy, provider = excluded.provider, recovered_amount = excluded.recovered_amount,
        recovered_by = excluded.recovered_by, first_failed_at = excluded.first_failed_at,
        last_failed_at = excluded.last_failed_at, recovered_at = excluded.recovered_at,
        closed_reason = excluded.closed_reason, next_action = excluded.next_action,
        explanation = excluded.explanation;
END $$;
