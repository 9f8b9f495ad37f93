-- depends: 0005_classification_overrides
-- Deliveries a customer's home could not apply: how often it failed and why. After a few failures the gateway
-- quarantines the delivery with that reason (it stays replayable), instead of re-sending it for ever.

ALTER TABLE deliveries ADD COLUMN apply_failures integer NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_error text;
