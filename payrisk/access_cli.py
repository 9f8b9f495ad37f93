"""`payrisk keys|tenants|secrets|customers|retention …`: access control and personal data from the command line.

Every change is recorded in the audit trail as `cli:{user}`. Secrets are never taken from the command line (it
ends up in shell history and `ps`): `tenants update --secrets-file FILE` (or `-` for standard input) reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from payrisk.errors import CliError
from settings import Settings, load_settings

Sub = argparse._SubParsersAction  # type: ignore[type-arg]


def add_parsers(sub: Sub) -> None:
    _add_keys(sub)
    _add_tenants(sub)
    s = sub.add_parser("secrets", help="secrets at rest (PAYRISK_SECRET_KEY)")
    ssub = s.add_subparsers(dest="secrets_command", required=True)
    rot = ssub.add_parser("rotate", help="re-wrap every tenant secret with the first key of PAYRISK_SECRET_KEY",
                          description="Set PAYRISK_SECRET_KEY=new,old, run this, then drop the old key.")
    rot.add_argument("--tenant", help="only this tenant's secrets")
    rot.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    rot.set_defaults(handler=_run(_rotate))
    c = sub.add_parser("customers", help="personal data of customers")
    csub = c.add_subparsers(dest="customers_command", required=True)
    f = csub.add_parser("forget", help="erase a customer's personal data; amounts and decisions stay")
    f.add_argument("customer", metavar="ID")
    f.add_argument("--tenant", required=True)
    f.set_defaults(handler=_run(_forget))
    r = sub.add_parser("retention", help="remove raw webhook bodies past their retention now")
    rsub = r.add_subparsers(dest="retention_command", required=True)
    run = rsub.add_parser("run", help="apply PAYRISK_RAW_RETENTION_DAYS / each tenant's raw_retention_days")
    run.add_argument("--days", type=int, help="default retention for tenants without their own")
    run.add_argument("--json", action="store_true", help='print {"removed": N}')
    run.set_defaults(handler=_run(_retention))


def _add_keys(sub: Sub) -> None:
    k = sub.add_parser("keys", help="API keys (hashed at rest; a key is shown once)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    c = ksub.add_parser("create", help="create a key and print it once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--scope", action="append", required=True, choices=["read", "write", "admin"],
                   help="read < write < admin (repeatable)")
    c.add_argument("--name", default="")
    c.add_argument("--expires-in-days", type=int, help="the key stops working after this many days")
    c.add_argument("--platform", action="store_true", help="a platform key: may act for every tenant (recorded)")
    c.add_argument("--json", action="store_true", help='print {"id": …, "key": …}')
    c.set_defaults(handler=_run(_key_create))
    ls = ksub.add_parser("list", help="list keys (never the key itself)")
    ls.add_argument("--tenant")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_run(_key_list))
    rv = ksub.add_parser("revoke", help="revoke a key by its id (prk_…)")
    rv.add_argument("key_id", metavar="ID")
    rv.set_defaults(handler=_run(_key_revoke))


def _add_tenants(sub: Sub) -> None:
    t = sub.add_parser("tenants", help="tenants: create, list, show, update")
    tsub = t.add_subparsers(dest="tenants_command", required=True)
    c = tsub.add_parser("create", help="create a tenant")
    c.add_argument("tenant", metavar="NAME", help="tenant id ([a-z0-9][a-z0-9_-]*)")
    _change_options(c)
    c.set_defaults(handler=_run(_tenant_create))
    tsub.add_parser("list", help="list tenants (secrets masked)").set_defaults(handler=_run(_tenant_list))
    s = tsub.add_parser("show", help="one tenant as JSON (secrets masked)")
    s.add_argument("tenant", metavar="NAME")
    s.set_defaults(handler=_run(_tenant_show))
    u = tsub.add_parser("update", help="change a tenant (only the options given)")
    u.add_argument("tenant", metavar="NAME")
    _change_options(u)
    u.set_defaults(handler=_run(_tenant_update))


def _change_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="display name")
    p.add_argument("--retry-mode", choices=["own", "observe"])
    p.add_argument("--timezone", help="IANA time zone")
    p.add_argument("--raw-retention-days", type=int)
    p.add_argument("--settings-file", help="a JSON object of further fields (branding, alert_channels, quiet_hours)")
    p.add_argument("--secrets-file", help="a JSON object of secrets (stripe_api_key, stripe_webhook_secrets, …); "
                   "'-' reads standard input")


# ------------------------------------------------------------------------------------------------ plumbing


def _run(command: Callable[[Any, Settings, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace],
                                                                                          int]:
    def handler(args: argparse.Namespace) -> int:
        settings = load_settings()
        if not settings.database.url:
            raise CliError("DATABASE_URL: this command works on the platform's database (set DATABASE_URL)")

        async def main() -> int:
            async with _transaction(settings.database.url or "") as conn:
                return await command(conn, settings, args)

        return asyncio.run(main())

    return handler


@asynccontextmanager
async def _transaction(url: str) -> AsyncIterator[Any]:
    from store import Database, StoreUnavailable

    db = Database(url, min_size=1, max_size=1, timeout=5.0)
    try:
        await db.open(timeout=5.0)
    except StoreUnavailable as exc:
        raise CliError(f"DATABASE_URL: {str(exc).strip().splitlines()[0]}") from None
    try:
        async with db.transaction() as conn:
            yield conn
    finally:
        await db.close()


def _who() -> str:
    return f"cli:{getpass.getuser()}"


async def _audit(conn: Any, tenant: str, action: str, target: str, before: Any = None, after: Any = None) -> None:
    from store import audit

    await audit.record(conn, tenant=tenant, principal=_who(), via="cli", action=action, target=target,
                       before=before, after=after)


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _keyring(settings: Settings) -> Any:
    from store.secrets import Keyring

    return Keyring(settings.auth.secret_keys)


# ------------------------------------------------------------------------------------------------ keys


async def _key_create(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import keys

    await _tenant_row(conn, args.tenant)
    expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    row, key = await keys.create(conn, args.tenant, args.scope, created_by=_who(), name=args.name,
                                 platform=args.platform, expires_at=expires)
    await _audit(conn, args.tenant, "key.created", row["key_id"], after=row)
    if args.json:
        print(json.dumps({"id": row["key_id"], "key": key}))
    else:
        print(f"{key}\n(key {row['key_id']} of tenant {args.tenant}, scopes {','.join(row['scopes'])}: shown once, "
              "only its hash is stored)", file=sys.stdout)
    return 0


async def _key_list(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import keys

    rows = await keys.list_keys(conn, args.tenant)
    if args.json:
        _print(rows)
        return 0
    for r in rows:
        state = "revoked" if r["revoked_at"] else ("expires " + str(r["expires_at"]) if r["expires_at"] else "active")
        print(f"{r['key_id']}  {r['tenant_id']:<16} {','.join(r['scopes']):<16} {'platform ' if r['platform'] else ''}"
              f"{state}  last used {r['last_used_at'] or 'never'}  {r['name']}")
    return 0


async def _key_revoke(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import keys

    before = await keys.get(conn, args.key_id, None)
    row = await keys.revoke(conn, args.key_id, None)
    if row is None or before is None:
        raise CliError(f"no key {args.key_id!r}")
    await _audit(conn, row["tenant_id"], "key.revoked", args.key_id, before=before, after=row)
    print(f"key {args.key_id} revoked")
    return 0


# ------------------------------------------------------------------------------------------------ tenants


async def _tenant_row(conn: Any, tenant: str) -> dict[str, Any]:
    from store import tenant_records

    row = await tenant_records.get(conn, tenant, for_update=True)
    if row is None:
        raise CliError(f"no tenant {tenant!r}")
    return row


def _change(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    from pydantic import ValidationError

    from store.tenant_model import TenantChange

    given: dict[str, Any] = {**(extra or {}), **_json_file(args.settings_file, "--settings-file"),
                             **_json_file(args.secrets_file, "--secrets-file")}
    for field in ("name", "retry_mode", "timezone", "raw_retention_days"):
        if getattr(args, field) is not None:
            given[field] = getattr(args, field)
    try:
        return TenantChange.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CliError(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from None


def _json_file(path: str | None, option: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text()
        value = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise CliError(f"{option}: cannot read a JSON object ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise CliError(f"{option}: expected a JSON object")
    return value


async def _view(conn: Any, settings: Settings, row: dict[str, Any]) -> dict[str, Any]:
    from gateway.admin.tenants import view

    return await view(conn, _keyring(settings), row)


async def _store_secrets(conn: Any, settings: Settings, tenant: str, change: Any) -> None:
    from store import tenant_secrets

    secrets = change.secret_changes()
    if secrets and not settings.auth.secret_keys:
        raise CliError("PAYRISK_SECRET_KEY: secrets are stored encrypted with it; set it first")
    for name, value in secrets.items():
        await tenant_secrets.put(conn, _keyring(settings), tenant, name, value)


async def _tenant_create(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import tenant_records
    from store.tenant_model import TENANT_ID

    if not TENANT_ID.match(args.tenant):
        raise CliError(f"tenant id {args.tenant!r}: use lower-case letters, digits, '-' and '_' (max 63)")
    change = _change(args)
    row = await tenant_records.create(conn, args.tenant, change.name or args.tenant, change.retry_mode or "own",
                                      change.settings_changes())
    if row is None:
        raise CliError(f"tenant {args.tenant!r} exists")
    await _store_secrets(conn, settings, args.tenant, change)
    shown = await _view(conn, settings, row)
    await _audit(conn, args.tenant, "tenant.created", args.tenant, after=shown)
    _print(shown)
    return 0


async def _tenant_list(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import tenant_records

    _print([await _view(conn, settings, row) for row in await tenant_records.list_all(conn)])
    return 0


async def _tenant_show(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    _print(await _view(conn, settings, await _tenant_row(conn, args.tenant)))
    return 0


async def _tenant_update(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import tenant_records

    before = await _view(conn, settings, await _tenant_row(conn, args.tenant))
    change = _change(args)
    row = await tenant_records.update(conn, args.tenant, name=change.name, retry_mode=change.retry_mode,
                                      settings=change.settings_changes())
    await _store_secrets(conn, settings, args.tenant, change)
    after = await _view(conn, settings, row)
    await _audit(conn, args.tenant, "tenant.updated", args.tenant, before=before, after=after)
    _print(after)
    return 0


# ------------------------------------------------------------------------------------------------ the rest


async def _rotate(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store import tenant_secrets
    from store.secrets import SecretKeyError

    try:
        counts = await tenant_secrets.rotate(conn, _keyring(settings), args.tenant)
    except SecretKeyError as exc:
        raise CliError(str(exc)) from None
    await _audit(conn, args.tenant or "default", "secrets.rotated", args.tenant or "every tenant", after=counts)
    if getattr(args, "json", False):
        print(json.dumps(counts))
        return 0
    print(f"{counts['rewrapped']} secrets re-wrapped with the current key; {counts['moved_from_settings']} tenants' "
          "plaintext webhook secrets moved into encrypted storage")
    return 0


async def _forget(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from actors.domain.case import evolve
    from store.privacy import forget

    erased = await forget(conn, args.tenant, args.customer, datetime.now(UTC).isoformat(), evolve)
    if erased is None:
        raise CliError(f"no customer {args.customer!r} in tenant {args.tenant!r}")
    await _audit(conn, args.tenant, "customer.forgotten", args.customer, after={"erased": erased})
    _print({"customer_id": args.customer, "erased": erased})
    return 0


async def _retention(conn: Any, settings: Settings, args: argparse.Namespace) -> int:
    from store.privacy import apply_retention

    total = 0
    while (removed := await apply_retention(conn, args.days or settings.privacy.raw_retention_days)) > 0:
        total += removed
    print(json.dumps({"removed": total}) if getattr(args, "json", False) else f"{total} raw bodies removed")
    return 0
