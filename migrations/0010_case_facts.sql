-- A read model of every invoice case: one row per (tenant, customer, invoice) that has failed, kept in step with
-- the customer's checkpoint by a trigger in the same transaction (whoever writes the checkpoint: the customer's
-- home, forgetting a customer, a restore). Analytics, the cases API and the dashboard read it through an index
-- instead of unpacking every checkpoint's JSON (7–10 s for 100,000 cases before; see docs/BENCHMARKS.md).
-- Nothing here is personal data: amounts, codes, states and times only.
CREATE TABLE case_facts (
    tenant_id         text NOT NULL,
    customer_id       text NOT NULL,
    invoice_id        text NOT NULL,
    state             text NOT NULL,
    amount_due        bigint NOT NULL,
    currency          text NOT NULL,
    attempts_made     integer NOT NULL,
    max_attempts      integer,
    category          text NOT NULL,
    reason            text NOT NULL,
    segment           text NOT NULL,
    strategy_id       text,
    strategy_version  text,
    strategy          text NOT NULL,
    provider          text NOT NULL,
    recovered_amount  bigint NOT NULL,
    recovered_by      text NOT NULL,
    first_failed_at   timestamptz NOT NULL,
    last_failed_at    timestamptz,
    recovered_at      timestamptz,
    closed_reason     text,
    next_action       jsonb,
    explanation       text,
    PRIMARY KEY (tenant_id, customer_id, invoice_id)
);
CREATE INDEX case_facts_by_first_failure ON case_facts (tenant_id, first_failed_at, customer_id, invoice_id);

-- The facts of one checkpoint. A case's provider: its own `provider` when recorded, else the stream's provider
-- prefix (`adyen:cus_1`; actors/domain/streams.py), else 'stripe' (Stripe customers keep bare stream ids).
-- No lookup into other tables: the trigger's cost is the customer's own cases, whatever the table sizes.
CREATE FUNCTION case_facts_refresh(p_tenant text, p_stream text, p_old jsonb, p_state jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- cases the previous state had that the new one no longer counts, each by its whole key (an index lookup)
    DELETE FROM case_facts
     WHERE tenant_id = p_tenant AND customer_id = p_stream
       AND invoice_id = ANY (ARRAY(SELECT c.key FROM jsonb_each(coalesce(p_old->'cases', '{}'::jsonb)) c
                                   WHERE (p_state->'cases'->c.key->>'first_failed_at') IS NULL));
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

CREATE FUNCTION case_facts_follow_checkpoint() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM case_facts WHERE tenant_id = OLD.tenant_id AND customer_id = OLD.stream_id;
        RETURN NULL;
    END IF;
    PERFORM case_facts_refresh(NEW.tenant_id, NEW.stream_id,
                               CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state);
    RETURN NULL;
END $$;

CREATE TRIGGER checkpoints_case_facts AFTER INSERT OR UPDATE OF state OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION case_facts_follow_checkpoint();

-- the cases already there (a DO block: a migration prints no result table)
DO $$ BEGIN PERFORM case_facts_refresh(tenant_id, stream_id, NULL, state) FROM checkpoints; END $$;
