"""`payrisk strategies validate|explain`: thin wrappers around strategies.cli."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from payrisk.errors import CliError
from settings import load_settings
from store import StoreError, checkpoints


def cmd_validate(args: argparse.Namespace) -> int:
    from strategies.cli import validate

    return int(validate(Path(args.file) if args.file else None, as_json=getattr(args, "json", False)))


def cmd_explain(args: argparse.Namespace) -> int:
    """The customer's segment, strategy and next steps, from its stored state (its latest failing invoice)."""
    from actors.domain.strategy_planner import profile_of
    from strategies.cli import explain

    settings = load_settings()
    if not settings.database.url:
        raise CliError("DATABASE_URL: explain reads the platform's database (set DATABASE_URL)")
    try:
        state = checkpoints.load_sync(settings.database.url, args.tenant, args.customer)
    except StoreError as exc:
        raise CliError(f"DATABASE_URL: {str(exc).strip().splitlines()[0]}") from None
    if state is None:
        raise CliError(f"no customer {args.customer!r} in tenant {args.tenant!r}")
    cases = sorted(state["cases"].values(), key=lambda c: c.get("last_failed_at") or "")
    case = cases[-1] if cases else {"card": {}, "amount_due": 0, "currency": "usd"}
    classification = case.get("classification") or {}
    now = datetime.now(UTC)
    return int(explain(profile_of(state, case, now=now), now=now,
                       category=str(classification.get("category", "SOFT_DECLINE")),
                       reason=str(classification.get("reason", "generic_decline")),
                       attempts_made=1 + int(case.get("attempts_made") or 0),
                       brand=case["card"].get("card_brand"), as_json=getattr(args, "json", False)))
