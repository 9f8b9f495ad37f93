"""Helpers behind ``payrisk strategies validate [FILE]`` and ``payrisk strategies explain``.

Each prints and returns an exit code: 0 fine, 2 a rule file is invalid (one line: file, field, reason).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from strategies.calendar import Countries, load_countries
from strategies.errors import StrategyError
from strategies.files import display
from strategies.loader import (
    SEGMENTS_FILE,
    StrategyBook,
    check_references,
    default_book,
    default_segments,
    load_segments,
    load_strategies,
    load_template,
)
from strategies.network import NetworkLimits
from strategies.planner import RetryPlan, plan_next
from strategies.projection import project
from strategies.segments import CustomerProfile, SegmentRules, select_segment

EXIT_OK = 0
EXIT_INVALID = 2


def validate(path: Path | None = None, *, out: TextIO | None = None, err: TextIO | None = None,
             as_json: bool = False) -> int:
    """Validate the shipped rules (no ``path``), a templates directory, or one file of any kind. With ``as_json``
    one object goes to ``out`` either way: ``{"ok": true, "summary": …}`` or ``{"ok": false, "error": …}``."""
    try:
        summary = _validate(path)
    except StrategyError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}), file=out or sys.stdout)
        else:
            print(f"invalid: {exc}", file=err or sys.stderr)
        return EXIT_INVALID
    if as_json:
        print(json.dumps({"ok": True, "summary": summary}), file=out or sys.stdout)
    else:
        print(f"ok: {summary}", file=out or sys.stdout)
    return EXIT_OK


def _validate(path: Path | None) -> str:
    if path is None:
        book, rules, countries = load_strategies(), load_segments(), load_countries()
        check_references(rules, book, display(SEGMENTS_FILE))
        return (
            f"{_book_summary(book)}; {len(rules.rules)} segment rules; {len(countries.countries)} countries"
        )
    if path.is_dir():
        return f"{display(path)}: {_book_summary(load_strategies(path))}"
    kind = _kind(path)
    if kind == "segments":
        return f"{display(path)}: {len(load_segments(path).rules)} segment rules"
    if kind == "countries":
        return f"{display(path)}: {len(load_countries(path).countries)} countries"
    strategy = load_template(path)
    return f"{display(path)}: strategy {strategy.id} v{strategy.version}"


def _kind(path: Path) -> str:
    """Segment rules have ``rules``, calendars ``countries``; anything else is read as a template."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "strategy"  # the template loader reports the unreadable file precisely
    keys = data.keys() if isinstance(data, dict) else ()
    return "segments" if "rules" in keys else "countries" if "countries" in keys else "strategy"


def _book_summary(book: StrategyBook) -> str:
    names = ", ".join(f"{s.id} v{s.version}" for s in book.strategies)
    return f"{len(book.strategies)} strategies ({names})"


def explain(
    profile: CustomerProfile,
    *,
    now: datetime,
    category: str = "SOFT_DECLINE",
    reason: str = "generic_decline",
    attempts_made: int = 1,
    first_failed_at: datetime | None = None,
    card_history: Sequence[datetime] = (),
    brand: str | None = None,
    visa_category: int | None = None,
    mc_advice_code: str | None = None,
    min_delay_seconds: int = 0,
    seed: int = 0,
    book: StrategyBook | None = None,
    rules: SegmentRules | None = None,
    limits: NetworkLimits | None = None,
    countries: Countries | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    as_json: bool = False,
) -> int:
    """Print the segment, strategy and next plan for ``profile``, then the schedule if every retry fails (with
    ``as_json``, one object: customer, segment, rule, strategy, next, schedule)."""
    stream = out or sys.stdout
    try:
        choice = select_segment(rules or default_segments(), profile, countries)
        strategy = (book or default_book()).get(choice.strategy_id)
    except StrategyError as exc:
        print(f"invalid: {exc}", file=err or sys.stderr)
        return EXIT_INVALID
    first = first_failed_at or now
    limits = limits or NetworkLimits()
    if not as_json:
        print(
            f"customer {profile.customer_id}: segment {choice.segment} (rule {choice.rule_index}) "
            f"→ strategy {strategy.id} v{strategy.version}",
            file=stream,
        )
    plan = plan_next(
        strategy,
        category=category,
        reason=reason,
        attempts_made=attempts_made,
        first_failed_at=first,
        now=now,
        profile=profile,
        card_history=card_history or (first,),
        brand=brand,
        visa_category=visa_category,
        mc_advice_code=mc_advice_code,
        min_delay_seconds=min_delay_seconds,
        seed=seed,
        limits=limits,
        segment=choice.segment,
        countries=countries,
    )
    schedule = project(
        strategy,
        category=category,
        reason=reason,
        first_failed_at=first,
        profile=profile,
        segment=choice.segment,
        brand=brand,
        visa_category=visa_category,
        mc_advice_code=mc_advice_code,
        min_delay_seconds=min_delay_seconds,
        seed=seed,
        limits=limits,
        countries=countries,
    )
    if as_json:
        print(json.dumps({"customer": profile.customer_id, "segment": choice.segment, "rule": choice.rule_index,
                          "strategy": {"id": strategy.id, "version": strategy.version},
                          "next": plan.model_dump(mode="json"),
                          "schedule": [step.model_dump(mode="json") for step in schedule]}), file=stream)
        return EXIT_OK
    print(f"next: {_line(plan)}", file=stream)
    print("if every retry fails the same way:", file=stream)
    for step in schedule:
        print(f"  {_line(step)}", file=stream)
    return EXIT_OK


def _line(plan: RetryPlan) -> str:
    email = f" [email {plan.email_template}]" if plan.email_template else ""
    alert = f" [alert {plan.alert}]" if plan.alert else ""
    return f"{plan.action}{email}{alert} — {plan.explanation}"
