"""Tenant secrets (provider keys, webhook signing secrets, alert secrets), envelope-encrypted at rest.

Plaintexts exist only in memory of the process that needs them; this module never logs one. Webhook secrets
(several while rotating) are stored as one JSON list under `stripe_webhook_secrets`.
"""

from __future__ import annotations

from typing import Any

import orjson

from store.db import Conn
from store.secrets import Keyring, Sealed

NAMES = ("stripe_api_key", "stripe_webhook_secrets", "alert_webhook_secret", "slack_webhook_url",
         # the other providers' (gateway/providers/registry.py; docs/PROVIDERS.md)
         "adyen_hmac_keys", "adyen_webhook_basic_auth", "adyen_api_key", "adyen_merchant_account",
         "braintree_merchant_id", "braintree_public_key", "braintree_private_key", "paddle_webhook_secrets",
         "generic_webhook_secrets")
#: secrets holding several values while rotating, stored as one JSON list
LIST_NAMES = frozenset({"stripe_webhook_secrets", "adyen_hmac_keys", "paddle_webhook_secrets",
                        "generic_webhook_secrets"})
SELECT_ONE = "SELECT kek_id, wrapped_dek, ciphertext FROM tenant_secrets WHERE tenant_id = %s AND name = %s"


def _sealed(row: dict[str, Any]) -> Sealed:
    return Sealed(str(row["kek_id"]), bytes(row["wrapped_dek"]), bytes(row["ciphertext"]))


def encode(name: str, value: str | list[str]) -> str:
    return orjson.dumps(value).decode() if name in LIST_NAMES else str(value)


def decode(name: str, plaintext: str) -> str | list[str]:
    return list(orjson.loads(plaintext)) if name in LIST_NAMES else plaintext


def open_row(keyring: Keyring, tenant: str, name: str, row: dict[str, Any] | None) -> str | list[str] | None:
    """The plaintext of a row read with SELECT_ONE (sync or async connection alike), or None."""
    return None if row is None else decode(name, keyring.open(tenant, name, _sealed(row)))


async def put(conn: Conn, keyring: Keyring, tenant: str, name: str, value: str | list[str] | None) -> None:
    """Store (or, with None / an empty list, delete) one secret of the tenant."""
    if value is None or value == []:
        await conn.execute("DELETE FROM tenant_secrets WHERE tenant_id = %s AND name = %s", (tenant, name))
        return
    sealed = keyring.seal(tenant, name, encode(name, value))
    await conn.execute(
        "INSERT INTO tenant_secrets (tenant_id, name, kek_id, wrapped_dek, ciphertext) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, name) DO UPDATE SET kek_id = excluded.kek_id, wrapped_dek = excluded.wrapped_dek,"
        " ciphertext = excluded.ciphertext, updated_at = now()",
        (tenant, name, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertext))


async def sealed_row(conn: Conn, tenant: str, name: str) -> dict[str, Any] | None:
    """The sealed row for `open_row` (read here, opened by the caller with its keyring)."""
    cur = await conn.execute(SELECT_ONE, (tenant, name))
    row: dict[str, Any] | None = await cur.fetchone()
    return row


def sealed_row_sync(url: str, tenant: str, name: str) -> dict[str, Any] | None:
    """`sealed_row` with one short synchronous connection (threaded actors). Raises StoreError (translated)."""
    import psycopg
    from psycopg.rows import dict_row

    from store.errors import translate

    try:
        with psycopg.connect(url, row_factory=dict_row, connect_timeout=5) as conn:
            return conn.execute(SELECT_ONE, (tenant, name)).fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from None


async def get(conn: Conn, keyring: Keyring, tenant: str, name: str) -> str | list[str] | None:
    cur = await conn.execute(SELECT_ONE, (tenant, name))
    return open_row(keyring, tenant, name, await cur.fetchone())


async def all_of(conn: Conn, keyring: Keyring, tenant: str) -> dict[str, str | list[str]]:
    cur = await conn.execute("SELECT name, kek_id, wrapped_dek, ciphertext FROM tenant_secrets WHERE tenant_id = %s",
                             (tenant,))
    return {row["name"]: decode(row["name"], keyring.open(tenant, row["name"], _sealed(row)))
            for row in await cur.fetchall()}


async def rotate(conn: Conn, keyring: Keyring, tenant: str | None = None) -> dict[str, int]:
    """Re-wrap every data key with the current master key, and move plaintext webhook secrets still kept in
    `tenants.settings` (before encryption existed) into encrypted storage. Run inside one transaction."""
    cur = await conn.execute("SELECT tenant_id, name, kek_id, wrapped_dek, ciphertext FROM tenant_secrets"
                             " WHERE kek_id <> %(kek)s AND (%(t)s::text IS NULL OR tenant_id = %(t)s) FOR UPDATE",
                             {"kek": keyring.current_id, "t": tenant})
    rows = await cur.fetchall()
    for row in rows:
        sealed = keyring.rewrap(row["tenant_id"], row["name"], _sealed(row))
        await conn.execute("UPDATE tenant_secrets SET kek_id = %s, wrapped_dek = %s WHERE tenant_id = %s AND name = %s",
                           (sealed.kek_id, sealed.wrapped_dek, row["tenant_id"], row["name"]))
    cur = await conn.execute("SELECT tenant_id, settings->'stripe_webhook_secrets' AS secrets FROM tenants"
                             " WHERE settings ? 'stripe_webhook_secrets' AND (%(t)s::text IS NULL OR tenant_id = %(t)s)"
                             " FOR UPDATE", {"t": tenant})
    legacy = await cur.fetchall()
    for row in legacy:
        await put(conn, keyring, row["tenant_id"], "stripe_webhook_secrets", list(row["secrets"] or []))
        await conn.execute("UPDATE tenants SET settings = settings - 'stripe_webhook_secrets' WHERE tenant_id = %s",
                           (row["tenant_id"],))
    return {"rewrapped": len(rows), "moved_from_settings": len(legacy)}
