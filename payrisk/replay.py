"""`payrisk replay`: re-parse quarantined deliveries, or fold a customer's event log and verify it."""

from __future__ import annotations

import argparse
import asyncio

import orjson

from actors.domain.case import empty_state, evolve
from payrisk.errors import CliError
from settings import load_settings
from store import Database, StoreError, checkpoints, deliveries, events
from store.deliveries import DeliveryStatus


def cmd_replay(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.database.url:
        raise CliError("DATABASE_URL: replay needs the platform's database (set DATABASE_URL)")
    try:
        if args.quarantined:
            return asyncio.run(_replay_quarantined(settings.database.url, args.tenant, bool(args.json)))
        return asyncio.run(_replay_customer(settings.database.url, args.tenant, args.customer, args.verify,
                                            bool(args.json)))
    except StoreError as exc:
        raise CliError(f"DATABASE_URL: {exc}") from None


async def _replay_quarantined(url: str, tenant_id: str, as_json: bool = False) -> int:
    """Deliveries that now parse go back to `received`; the gateway's sweeper hands them to their customers."""
    from gateway.providers.stripe import PayloadError
    from gateway.redispatch import normalize_stored

    db = Database(url)
    await db.open()
    fixed = still = 0
    try:
        async with db.transaction() as conn:
            for row in await deliveries.quarantined_for_update(conn, tenant_id):
                try:
                    customer_id, items = normalize_stored(row["provider"], bytes(row["body"]))
                except PayloadError as exc:
                    still += 1
                    await deliveries.set_status(conn, row["delivery_id"], DeliveryStatus.QUARANTINED, exc.reason)
                    continue
                status = DeliveryStatus.RECEIVED if items else DeliveryStatus.IGNORED
                await deliveries.set_status(conn, row["delivery_id"], status, None, customer_id)
                fixed += 1
    finally:
        await db.close()
    if as_json:
        print(orjson.dumps({"replayed": fixed, "still_quarantined": still}).decode())
    else:
        print(f"replayed {fixed} quarantined deliveries; {still} still do not parse")
    return 0 if still == 0 else 1


async def _replay_customer(url: str, tenant_id: str, customer_id: str, verify: bool, as_json: bool = False) -> int:
    db = Database(url)
    await db.open()
    try:
        async with db.connection() as conn:
            log = await events.load(conn, tenant_id, customer_id)
            cp = await checkpoints.load(conn, tenant_id, customer_id)
    finally:
        await db.close()
    state = empty_state(tenant_id, customer_id)
    for event in log:
        state = evolve(state, event.event_type, event.payload)
    matches = cp is not None and cp.version == len(log) and cp.state == state
    if as_json:  # one object: the replayed state and, with --verify, whether it equals the checkpoint
        print(orjson.dumps({"customer_id": customer_id, "events": len(log), "state": state,
                            "checkpoint_version": cp.version if cp else None,
                            "verified": matches if verify else None}).decode())
        return 1 if verify and not matches else 0
    print(orjson.dumps({"customer_id": customer_id, "events": len(log), "state": state},
                       option=orjson.OPT_INDENT_2).decode())
    if not verify:
        return 0
    if not matches:
        print(f"MISMATCH: replay of {len(log)} events differs from checkpoint v{cp.version if cp else 0}")
        return 1
    print(f"OK: replay of {len(log)} events equals checkpoint v{cp.version if cp else 0}")
    return 0
