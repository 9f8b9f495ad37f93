-- depends: 0007_access_control
-- Attempts the provider made on its own (Braintree's retries, Adyen Auto Rescue, Paddle's dunning) share the
-- attempt ledger with payrisk's, so a card's network budget counts both. Their numbers are the provider's, so the
-- one-row-per-attempt-number rule holds for payrisk's own attempts only.
ALTER TABLE attempts ADD COLUMN origin text NOT NULL DEFAULT 'payrisk' CHECK (origin IN ('payrisk', 'provider'));
ALTER TABLE attempts DROP CONSTRAINT attempts_tenant_id_invoice_id_attempt_no_key;
CREATE UNIQUE INDEX attempts_payrisk_attempt_no ON attempts (tenant_id, invoice_id, attempt_no) WHERE origin = 'payrisk';
