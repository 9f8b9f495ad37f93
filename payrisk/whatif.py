"""`payrisk whatif`: what a candidate strategy would have done with a tenant's recorded failures.

Every invoice whose first failure was classified in ``[--from, --to)`` is replayed through the pure decision core
(`decide_timer` / `decide_attempt_result` with a `StrategyPlanner` whose book holds the candidate) from the
customer's state just before that classification. A retry the candidate makes at the very time of the recorded
one (every earlier one matching too) has the recorded outcome; any other retry has the success chance of an
outcome model fitted from the tenant's own ledger (attempt outcomes by decline reason, days since the failure,
local hour and attempts made, shrunk toward the published prior: `strategies.learned.fit`). Results are
expectations: recovered revenue, retries and emails weighted by the chance the case is still open. A customer's
own action (a new card, paying the invoice) is taken as recorded: it ends the replayed path, and what followed it
counts for the candidate while its case would still have been open. The shipped policy reproduces the record.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from actors.domain.decisions import Json
from payrisk.errors import CliError
from payrisk.whatif_replay import History, replay
from settings import load_settings
from store import StoreError
from store.db import connect
from store.history import first_failures, ledger, streams_with_failures
from strategies.errors import StrategyError
from strategies.loader import StrategyBook, default_book, load_template
from strategies.model import Strategy

__all__ = ["History", "candidate_book", "cmd_whatif", "load", "replay"]


# -- the command ---------------------------------------------------------------------------------------------------
def candidate_book(path: Path, shipped: StrategyBook | None = None) -> tuple[StrategyBook, Strategy]:
    """The shipped book with the candidate in it (replacing the same id and version, else its latest)."""
    try:
        strategy = load_template(path)
    except StrategyError as exc:
        raise CliError(str(exc)) from None
    book = shipped or default_book()
    kept = tuple(s for s in book.strategies if (s.id, s.version) != (strategy.id, strategy.version))
    newer = [s for s in kept if s.id == strategy.id and s.version > strategy.version]
    if newer:  # the candidate must be what the segment rules get: drop later versions of its id
        kept = tuple(s for s in kept if s not in newer)
    return StrategyBook(strategies=(*kept, strategy)), strategy


def parse_day(value: str, flag: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    except ValueError:
        raise CliError(f"{flag}: {value!r} is not a date (YYYY-MM-DD)") from None


async def load(url: str, tenant: str, since: datetime, until: datetime) -> History:
    async with connect(url) as conn:
        streams = await streams_with_failures(conn, tenant, since, until)
        return History(tenant, streams, await ledger(conn, tenant), await first_failures(conn, tenant))


def cmd_whatif(args: argparse.Namespace) -> int:
    path = Path(args.strategy)
    if not path.is_file():
        raise CliError(f"--strategy: {path}: no such file")
    since, until = parse_day(args.from_date, "--from"), parse_day(args.to_date, "--to")
    if until <= since:
        raise CliError(f"--to ({args.to_date}) must be after --from ({args.from_date})")
    book, strategy = candidate_book(path)
    url = load_settings().database.url
    if not url:
        raise CliError("DATABASE_URL: whatif needs the platform's database (set DATABASE_URL)")
    try:
        history = asyncio.run(load(url, args.tenant, since, until))
    except StoreError as exc:
        raise CliError(f"DATABASE_URL: {exc}") from None
    result = {"tenant": args.tenant, "from": args.from_date, "to": args.to_date,
              "strategy": {"id": strategy.id, "version": strategy.version, "file": str(path)},
              **replay(history, book, since, until)}
    print(orjson.dumps(result).decode() if args.json else render(result))
    return 0


def render(result: Json) -> str:
    actual, candidate = result["actual"], result["candidate"]
    lines = [f"tenant {result['tenant']}, failures classified {result['from']} to {result['to']}: "
             f"{actual['cases']} cases; candidate {result['strategy']['id']} v{result['strategy']['version']} "
             f"decides {result['differing_cases']} of them differently",
             f"{'':22}{'actual':>14}{'candidate':>14}"]
    for label, key in (("recovered invoices", "recovered_invoices"), ("retries", "retries"), ("emails", "emails")):
        lines.append(f"{label:22}{actual[key]:>14,.1f}{candidate[key]:>14,.1f}")
    for currency in sorted({*actual["revenue"], *candidate["revenue"]}):
        a, c = actual["revenue"].get(currency, 0), candidate["revenue"].get(currency, 0)
        lines.append(f"{'revenue ' + currency:22}{a / 100:>14,.2f}{c / 100:>14,.2f}")
    return "\n".join(lines)
