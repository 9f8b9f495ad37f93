-- depends: 0004_notification_status
-- A tenant's overrides of the classification tables, edited on a running system
-- (PUT /api/tenants/{tenant}/classification-overrides, `payrisk classification overrides set`).
-- `overrides` is the list of override documents as validated (the format of an override file);
-- `revision` goes up by one on every change: shards compare it with the revision they hold and rebuild the
-- tenant's tables only when it moved.
CREATE TABLE classification_overrides (
    tenant_id   text PRIMARY KEY REFERENCES tenants (tenant_id),
    revision    bigint NOT NULL CHECK (revision >= 1),
    overrides   jsonb NOT NULL CHECK (jsonb_typeof(overrides) = 'array'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
