-- depends: 0021_provider_attempt_numbers
-- The metrics refresh (gateway/gauges.py) and the open-case views count open cases and revenue at risk every few
-- seconds: a partial index of open cases keeps that a small index-only read however many closed cases there are.
CREATE INDEX case_facts_open ON case_facts (tenant_id, currency) INCLUDE (customer_id, amount_due)
    WHERE state IN ('classifying', 'retry_scheduled', 'retrying', 'awaiting_customer', 'escalated');
