"""`payrisk whatif` on a recorded history in PostgreSQL: the shipped policy reproduces what happened, a candidate
differs only on the cases its strategy decides, and bad input is one line with exit code 2."""

from __future__ import annotations

import asyncio
import heapq
import json
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actors.domain.case import empty_state
from actors.domain.strategy_planner import StrategyPlanner
from bench.recovery import PayriskRun, _Customer
from bench.recovery_world import START, World
from payrisk.cli import main
from payrisk.whatif import History, candidate_book, load, replay
from store.attempts import Attempt, record
from store.db import connect
from store.events import NewEvent, append
from strategies.loader import TEMPLATES_DIR

SINCE, UNTIL = START, START + timedelta(days=40)
SHIPPED = TEMPLATES_DIR / "standard.v3.json"


class Recording(PayriskRun):
    """The bench's in-process run of the decision core, keeping every customer's events as the shard stores them."""

    def __init__(self, world: World, tenant: str) -> None:
        super().__init__(world, StrategyPlanner())  # as the platform plans: the prior timing, 5 % holdouts
        self.tenant = tenant
        self.streams: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)

    def _customer(self, items: list[Any]) -> None:  # noqa: D102 - tenure comes from no event: leave it unknown
        me = _Customer(empty_state(self.tenant, items[0].customer.id), {f.invoice: f for f in items})
        for f in items:
            self._push(me, f.at, "fail", f)
        while me.queue:
            at, _, kind, data = heapq.heappop(me.queue)
            getattr(self, f"_on_{kind}")(me, at, data)

    def _apply(self, me: _Customer, now: datetime, d: Any) -> None:
        self.streams[me.state["customer_id"]].extend(d.events)
        super()._apply(me, now, d)


def ledger_rows(tenant: str, customer: str, events: list[tuple[str, dict[str, Any]]]) -> list[Attempt]:
    cards: dict[str, str | None] = {}
    rows: dict[str, Attempt] = {}
    for kind, p in events:
        if kind == "FailureClassified" and p["invoice_id"] not in cards:
            cards[p["invoice_id"]] = p["card"].get("card_fingerprint")
            key = f"provider:{p['invoice_id']}"  # the renewal's own failed charge counts on the card
            rows[key] = Attempt(tenant, key, customer, p["invoice_id"], 0, "stripe", "failed", None, None,
                                cards[p["invoice_id"]], "visa", datetime.fromisoformat(p["at"]), origin="provider")
        elif kind == "AttemptStarted":
            rows[p["idempotency_key"]] = Attempt(tenant, p["idempotency_key"], customer, p["invoice_id"],
                                                 p["attempt_no"], "stripe", "intent", None, None,
                                                 cards.get(p["invoice_id"]), "visa", datetime.fromisoformat(p["at"]))
        elif kind in ("AttemptSucceeded", "AttemptFailed") and p["idempotency_key"] in rows:
            status = "succeeded" if kind == "AttemptSucceeded" else "failed"
            rows[p["idempotency_key"]] = replace(rows[p["idempotency_key"]], status=status)
    return list(rows.values())


async def store(url: str, tenant: str, streams: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    async with connect(url) as conn:
        for customer, events in streams.items():
            await append(conn, tenant, customer, 0, [NewEvent(kind, payload) for kind, payload in events])
            for row in ledger_rows(tenant, customer, events):
                await record(conn, row)


@pytest.fixture(scope="module")
def recorded(database_url: str) -> tuple[str, History]:
    world, tenant = World("default", 3, 500, 45), f"whatif_{uuid.uuid4().hex[:8]}"
    run = Recording(world, tenant)
    run.run(world.failures())
    asyncio.run(store(database_url, tenant, run.streams))
    return tenant, asyncio.run(load(database_url, tenant, SINCE, UNTIL))


def test_the_shipped_policy_reproduces_the_recorded_decisions_and_outcome(recorded: tuple[str, History]) -> None:
    _, history = recorded
    result = replay(history, candidate_book(SHIPPED)[0], SINCE, UNTIL)
    actual, candidate = result["actual"], result["candidate"]
    assert actual["cases"] > 20 and actual["retries"] > 20 and actual["emails"] > 20
    assert result["differing_cases"] == 0, result["differing_invoices"]
    assert candidate == actual


def test_a_candidate_differs_only_on_the_cases_its_strategy_decides(recorded: tuple[str, History],
                                                                    tmp_path: Path) -> None:
    _, history = recorded
    doc = json.loads(SHIPPED.read_text())
    doc["version"] = 4
    doc["categories"]["SOFT_DECLINE"]["max_attempts"] = 3
    path = tmp_path / "standard.v4.json"
    path.write_text(json.dumps(doc))
    result = replay(history, candidate_book(path)[0], SINCE, UNTIL)
    standard = {p["invoice_id"] for events in history.streams.values() for kind, p in events
                if kind in ("RetryScheduled", "Exhausted") and (p.get("strategy") or {}).get("id") == "standard"
                and p["attempt_no"] >= 3}
    assert result["differing_cases"] > 0 and set(result["differing_invoices"]) <= standard
    assert result["candidate"]["retries"] < result["actual"]["retries"]


def test_the_command_prints_one_json_object(recorded: tuple[str, History], database_url: str,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    tenant, _ = recorded
    monkeypatch.setenv("DATABASE_URL", database_url)
    code = main(["whatif", "--strategy", str(SHIPPED), "--from", f"{SINCE:%Y-%m-%d}", "--to", f"{UNTIL:%Y-%m-%d}",
                 "--tenant", tenant, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["differing_cases"] == 0 and doc["strategy"] == {
        "id": "standard", "version": 3, "file": str(SHIPPED)}


@pytest.mark.parametrize(("argv", "message"), [
    (["--strategy", "/nonexistent.json", "--from", "2026-03-01", "--to", "2026-04-01"], "no such file"),
    (["--strategy", str(SHIPPED), "--from", "2026-13-01", "--to", "2026-04-01"], "--from: '2026-13-01' is not a date"),
    (["--strategy", str(SHIPPED), "--from", "2026-04-01", "--to", "2026-03-01"], "must be after --from"),
])
def test_bad_input_is_one_line_and_exit_code_two(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_broken_strategy_file_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "standard.v9.json"
    bad.write_text('{"id": "standard"}')
    assert main(["whatif", "--strategy", str(bad), "--from", "2026-03-01", "--to", "2026-04-01"]) == 2
    assert "standard.v9.json" in capsys.readouterr().err
