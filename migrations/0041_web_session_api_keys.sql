-- depends: 0030_case_facts_open_index
-- A dashboard session started with an API key (gateway/dashboard/signin.py) names that key: the session lives
-- only while the key does. Every request's session lookup joins the key (revoked or expired → no session), and
-- revoking the key also ends its sessions, so neither a revocation nor an expiry leaves a signed-in browser behind.
ALTER TABLE web_sessions ADD COLUMN api_key_id text REFERENCES api_keys (key_id) ON DELETE CASCADE;

-- Sessions started with a key before this migration carry the key id as their subject (and no email).
UPDATE web_sessions s SET api_key_id = s.subject
FROM api_keys k
WHERE k.key_id = s.subject AND s.email IS NULL AND s.api_key_id IS NULL;

CREATE INDEX web_sessions_by_api_key ON web_sessions (api_key_id) WHERE api_key_id IS NOT NULL;
