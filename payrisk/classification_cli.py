"""`payrisk classification overrides set|show --tenant T [FILE...]`: a tenant's overrides in the database.

The same validation as the API (`PUT /api/tenants/{tenant}/classification-overrides`) and as override files;
running shards pick a change up within a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from payrisk.errors import CliError
from settings import load_settings


def cmd_overrides(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.database.url:
        raise CliError("DATABASE_URL: the overrides live in the platform's database (set DATABASE_URL)")
    if args.action == "show":
        print(json.dumps(asyncio.run(_show(settings.database.url, args.tenant)), indent=2))
        return 0
    if not args.files:
        raise CliError("set needs at least one FILE (an override file, a list of them, or {\"overrides\": [...]})")
    stored = asyncio.run(_set(settings.database.url, args.tenant, [Path(f) for f in args.files]))
    count = len(stored["overrides"])
    print(f"tenant {args.tenant}: {count} override{'s' if count != 1 else ''} stored (revision {stored['revision']});"
          " running shards use them within a few seconds")
    return 0


def documents_of(path: Path) -> list[Any]:
    """An override file (one object), a list of them, or `{"overrides": [...]}`; bad JSON names the file."""
    from actors.domain.classification.loading import parse_json

    try:
        raw = parse_json(path.read_bytes(), str(path))
    except OSError as exc:
        raise CliError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if isinstance(raw, dict) and set(raw) == {"overrides"}:
        raw = raw["overrides"]
    return raw if isinstance(raw, list) else [raw]


@asynccontextmanager
async def _connect(url: str) -> AsyncIterator[Any]:
    from store import StoreError
    from store.db import connect

    try:
        async with connect(url) as conn:
            yield conn
    except StoreError as exc:
        raise CliError(f"DATABASE_URL: {str(exc).strip().splitlines()[0]}") from None


async def _known_tenant(conn: Any, tenant: str) -> None:
    from store import tenant_records

    if await tenant_records.get(conn, tenant) is None:
        raise CliError(f"no tenant {tenant!r}")


async def _show(url: str, tenant: str) -> dict[str, Any]:
    from store import classification_overrides

    async with _connect(url) as conn:
        await _known_tenant(conn, tenant)
        return (await classification_overrides.load(conn, tenant)).as_json()


async def _set(url: str, tenant: str, paths: list[Path]) -> dict[str, Any]:
    from actors.domain.classification import ClassificationTableError, default_tables
    from actors.domain.classification.loading import check_tenant_overrides
    from store import classification_overrides

    documents: list[Any] = []
    try:
        for path in paths:
            found = documents_of(path)
            check_tenant_overrides(tenant, found, default_tables(), source=str(path))
            documents += found
        check_tenant_overrides(tenant, documents, default_tables(), source="overrides")  # across files
    except ClassificationTableError as exc:
        raise CliError(str(exc)) from None
    async with _connect(url) as conn:
        await _known_tenant(conn, tenant)
        stored = await classification_overrides.save(conn, tenant, [{**d, "tenant": tenant} for d in documents])
    return stored.as_json()
