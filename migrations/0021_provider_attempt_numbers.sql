-- depends: 0020_provider_attempts
-- A provider's own attempt is written once per (invoice, the provider's attempt number): Stripe reports one retry
-- in several events (invoice.payment_failed, or invoice.paid beside invoice.payment_succeeded), and a manual
-- payment does not raise attempt_count, so an event repeating a number already written is no new attempt.
-- Attempts the provider did not number (attempt_no 0) are kept once per provider event.
CREATE UNIQUE INDEX attempts_provider_attempt_no ON attempts (tenant_id, invoice_id, attempt_no)
    WHERE origin = 'provider' AND attempt_no > 0;
