"""What one gateway process holds for access control: the keyring, principal look-ups, the audit writer, the
OIDC client, and the retention loop that removes raw bodies past their retention."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from starlette.requests import Request

from gateway.auth import cookies
from gateway.auth.principal import ROLE_SCOPE, Principal
from settings import Settings
from store import Database, StoreError, checkpoints, classification_overrides
from store import audit as audit_store
from store import keys as key_store
from store import sessions as session_store
from store.privacy import apply_retention
from store.secrets import Keyring

log = structlog.get_logger("payrisk.access")
_SECRET_WORDS = ("secret", "key", "password", "token")


class AccessControl:
    def __init__(self, settings: Settings, db: Database, redis: Any) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.keyring = Keyring(settings.auth.secret_keys)
        self.oidc: Any = None
        if settings.auth.oidc_issuer:
            from gateway.auth.oidc import OidcClient

            self.oidc = OidcClient(settings)
        self._retention: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.privacy.raw_retention_days is not None or self.settings.privacy.retention_interval_seconds:
            self._retention = asyncio.get_running_loop().create_task(self._retention_loop())

    async def stop(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        if self.oidc is not None:
            await self.oidc.aclose()

    # ----------------------------------------------------------------------------------------- principals

    async def authenticate(self, request: Request) -> tuple[Principal | None, str]:
        """The request's principal, or None and why (said in the 401; never which part of a key was wrong)."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None, "the Authorization header must be `Bearer <API key>`"
            return await self._key(token.strip())
        if self.keyring.configured and cookies.SESSION_COOKIE in request.cookies:
            return await self._session(request.cookies[cookies.SESSION_COOKIE])
        return None, "this route needs an API key (Authorization: Bearer …) or a signed-in session"

    async def _key(self, token: str) -> tuple[Principal | None, str]:
        async with self.db.connection() as conn:
            checked = await key_store.check(conn, token)
        if checked.row is None:
            return None, {"revoked": "the API key was revoked", "expired": "the API key has expired"}.get(
                checked.status, "the API key is not valid")
        row = checked.row
        return Principal("key", row["key_id"], row["tenant_id"], frozenset(row["scopes"]), row["platform"]), ""

    async def _session(self, cookie: str) -> tuple[Principal | None, str]:
        session_id = cookies.unsign(self.keyring.session_key(), cookie)
        if session_id is None:
            return None, "the session cookie is not valid; sign in again"
        async with self.db.connection() as conn:
            row = await session_store.lookup(conn, session_id)
        if row is None:
            return None, "the session has ended; sign in again"
        return Principal("session", row["subject"], row["tenant_id"], frozenset({ROLE_SCOPE[row["role"]]}),
                         row["platform"], row["csrf_token"]), ""

    # ----------------------------------------------------------------------------------------- audit

    async def audit(self, principal: Principal, tenant: str, action: str, *, target: str | None = None,
                    before: Any = None, after: Any = None, cross_tenant: bool = False, conn: Any = None) -> None:
        cross_tenant = cross_tenant or tenant != principal.tenant
        args = {"tenant": tenant, "principal": principal.label, "via": principal.via, "action": action,
                "target": target, "before": before, "after": after, "cross_tenant": cross_tenant}
        if conn is not None:
            await audit_store.record(conn, **args)
            return
        async with self.db.connection() as own:
            await audit_store.record(own, **args)

    def body_for_audit(self, body: bytes) -> Any:
        """A request body as the audit trail keeps it: JSON with anything secret-looking masked."""
        if not body:
            return None
        try:
            return _masked(orjson.loads(body))
        except orjson.JSONDecodeError:
            return {"bytes": len(body)}

    async def before_state(self, template: str | None, tenant: str, params: dict[str, Any]) -> Any:
        """What a generic state-changing route is about to change, for the audit trail's `before`."""
        async with self.db.connection() as conn:
            if template == "/api/customers/{customer_id}/profile":
                found = await checkpoints.row(conn, tenant, str(params.get("customer_id")))
                return found["state"].get("profile") if found else None
            if template == "/api/tenants/{tenant}/classification-overrides":
                return await classification_overrides.stored(conn, tenant)
        return None

    # ----------------------------------------------------------------------------------------- retention

    async def _retention_loop(self) -> None:
        """Remove raw bodies past their retention (the tenant's `raw_retention_days`, else the global setting).
        Every gateway process runs it; SKIP LOCKED batches make concurrent runs share the work."""
        while True:
            try:
                async with self.db.connection() as conn:
                    while await apply_retention(conn, self.settings.privacy.raw_retention_days) > 0:
                        await asyncio.sleep(0)
            except StoreError as exc:
                log.warning("retention.failed", error=str(exc)[:200])
            await asyncio.sleep(self.settings.privacy.retention_interval_seconds)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "…" if any(w in k.lower() for w in _SECRET_WORDS) and v is not None else _masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
