-- depends: 0003_sweeper_indexes
-- What happened to a recorded notification: `sent`, or `no_channel` (an alert while no alert channel was
-- configured: nothing went out; `detail.reason` says why). Every row written before this migration was sent.
ALTER TABLE notifications
    ADD COLUMN status text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'no_channel'));
