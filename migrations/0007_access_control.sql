-- depends: 0005_classification_overrides
-- Access control (issue 14): API keys, web sessions, encrypted tenant secrets, the operator audit trail, and
-- what the privacy operations record on deliveries. Every table carries tenant_id (invariant I8).

-- Machine principals. Only a SHA-256 of the whole key is stored; `key_id` is its visible prefix.
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    key_hash      bytea NOT NULL,
    scopes        text[] NOT NULL CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write', 'admin']),
    platform      boolean NOT NULL DEFAULT false,
    name          text NOT NULL DEFAULT '',
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);

-- People signed in with OpenID Connect. The cookie holds a random id; only its SHA-256 is stored here.
CREATE TABLE web_sessions (
    session_hash  bytea PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    subject       text NOT NULL,
    email         text,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    platform      boolean NOT NULL DEFAULT false,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Provider credentials and alert secrets, envelope-encrypted (payrisk/secrets.py): a random data key per
-- secret, wrapped by a key derived from PAYRISK_SECRET_KEY (`kek_id` names which one).
CREATE TABLE tenant_secrets (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    name         text NOT NULL CHECK (name IN ('stripe_api_key', 'stripe_webhook_secrets', 'alert_webhook_secret',
                                               'slack_webhook_url')),
    kek_id       text NOT NULL,
    wrapped_dek  bytea NOT NULL,
    ciphertext   bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Every change an operator makes (API or CLI), and every cross-tenant act of a platform admin.
CREATE TABLE audit_events (
    audit_id      bigserial PRIMARY KEY,
    tenant_id     text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    principal     text NOT NULL,
    via           text NOT NULL CHECK (via IN ('api', 'cli', 'web')),
    action        text NOT NULL,
    target        text,
    cross_tenant  boolean NOT NULL DEFAULT false,
    before        jsonb,
    after         jsonb
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, audit_id);

-- Raw bodies removed by the retention setting or by forgetting a customer: when, and why.
ALTER TABLE deliveries ADD COLUMN body_erased_at timestamptz, ADD COLUMN body_erased_reason text;
