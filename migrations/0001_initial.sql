-- payrisk initial schema. Every table carries tenant_id (invariant I8).

CREATE TABLE tenants (
    tenant_id     text PRIMARY KEY,
    name          text NOT NULL,
    retry_mode    text NOT NULL DEFAULT 'own' CHECK (retry_mode IN ('own', 'observe')),
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (tenant_id, name) VALUES ('default', 'Default tenant');

-- Raw webhook deliveries: exact body bytes and headers, stored before the 2xx (I1), deduped (I2).
CREATE TABLE deliveries (
    delivery_id        bigserial PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id),
    provider           text NOT NULL,
    provider_event_id  text NOT NULL,
    event_type         text NOT NULL,
    customer_id        text,
    body               bytea NOT NULL,
    headers            jsonb NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    status             text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'dispatched', 'applied', 'ignored', 'quarantined')),
    status_reason      text,
    dispatched_at      timestamptz,
    applied_at         timestamptz,
    UNIQUE (tenant_id, provider, provider_event_id)
);
CREATE INDEX deliveries_pending ON deliveries (received_at) WHERE status IN ('received', 'dispatched');
CREATE INDEX deliveries_by_status ON deliveries (tenant_id, status, delivery_id);
CREATE INDEX deliveries_by_customer ON deliveries (tenant_id, customer_id, delivery_id);

-- The append-only per-customer event log. (stream_id, version) is the optimistic-concurrency key.
CREATE TABLE events (
    position        bigserial UNIQUE,
    tenant_id       text NOT NULL,
    stream_id       text NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    event_type      text NOT NULL,
    schema_version  smallint NOT NULL DEFAULT 1,
    payload         jsonb NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_id, version)
);
CREATE INDEX events_by_type ON events (tenant_id, event_type, recorded_at);

-- Checkpoints: the folded state of a stream at a version.
CREATE TABLE checkpoints (
    tenant_id    text NOT NULL,
    stream_id    text NOT NULL,
    version      integer NOT NULL,
    state        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_id)
);

-- Durable timers (I4). One pending timer per (stream, key); claimed with FOR UPDATE SKIP LOCKED.
CREATE TABLE timers (
    timer_id     bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    stream_id    text NOT NULL,
    timer_key    text NOT NULL,
    due_at       timestamptz NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    claimed_by   text,
    claimed_at   timestamptz,
    fired_at     timestamptz,
    cancelled_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX timers_one_pending ON timers (tenant_id, stream_id, timer_key)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- Transactional outbox: side effects written in the decision's transaction, sent after commit.
CREATE TABLE outbox (
    outbox_id        bigserial PRIMARY KEY,
    tenant_id        text NOT NULL,
    topic            text NOT NULL,
    idempotency_key  text NOT NULL,
    stream_id        text,
    payload          jsonb NOT NULL,
    available_at     timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    claimed_by       text,
    claimed_at       timestamptz,
    sent_at          timestamptz,
    dead_at          timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX outbox_pending ON outbox (available_at) WHERE sent_at IS NULL AND dead_at IS NULL;

-- Retry attempts: the intent is committed before the provider call (I3).
CREATE TABLE attempts (
    tenant_id        text NOT NULL,
    idempotency_key  text NOT NULL,
    customer_id      text NOT NULL,
    invoice_id       text NOT NULL,
    attempt_no       integer NOT NULL,
    provider         text NOT NULL,
    status           text NOT NULL DEFAULT 'intent'
                     CHECK (status IN ('intent', 'succeeded', 'failed', 'unknown', 'skipped')),
    amount           bigint,
    currency         text,
    card_fingerprint text,
    card_brand       text,
    outcome          jsonb,
    intended_at      timestamptz NOT NULL,
    completed_at     timestamptz,
    PRIMARY KEY (tenant_id, idempotency_key),
    UNIQUE (tenant_id, invoice_id, attempt_no)
);
CREATE INDEX attempts_by_card ON attempts (tenant_id, card_fingerprint, intended_at);

-- Sent notifications (for frequency caps and the audit trail).
CREATE TABLE notifications (
    tenant_id        text NOT NULL,
    idempotency_key  text NOT NULL,
    customer_id      text,
    channel          text NOT NULL,
    template         text,
    recipient        text,
    sent_at          timestamptz NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX notifications_by_customer ON notifications (tenant_id, customer_id, sent_at);
