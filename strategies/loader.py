"""Loading the rule files once at start: strategy templates, segment rules, and their cross-references."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from strategies.errors import StrategyError
from strategies.files import PACKAGE_DIR, display, read_model
from strategies.model import Strategy
from strategies.segments import SegmentRules

TEMPLATES_DIR = PACKAGE_DIR / "templates"
SEGMENTS_FILE = PACKAGE_DIR / "segments.json"


class StrategyBook(BaseModel):
    """Every loaded strategy; several versions of one id may coexist so old decisions replay (I5)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategies: tuple[Strategy, ...]

    def get(self, strategy_id: str, version: int | None = None) -> Strategy:
        """The strategy ``strategy_id`` at ``version`` (default: its latest version)."""
        found = [s for s in self.strategies if s.id == strategy_id and version in (None, s.version)]
        if not found:
            wanted = strategy_id if version is None else f"{strategy_id} v{version}"
            raise StrategyError(f"unknown strategy {wanted!r}", file="strategy book", field="strategy")
        return max(found, key=lambda s: s.version)

    def ids(self) -> list[str]:
        return sorted({s.id for s in self.strategies})


def load_template(path: Path) -> Strategy:
    """One template file; its name must be ``<id>.json`` or ``<id>.v<version>.json``."""
    strategy = read_model(path, Strategy)
    if path.stem not in (strategy.id, f"{strategy.id}.v{strategy.version}"):
        raise StrategyError(
            f"id {strategy.id!r} does not match the file name (expected {strategy.id}.json)",
            file=display(path),
            field="id",
        )
    return strategy


def load_strategies(directory: Path | None = None) -> StrategyBook:
    """Every ``*.json`` template in ``directory`` (default: the shipped ``strategies/templates``)."""
    directory = directory or TEMPLATES_DIR
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise StrategyError("no strategy templates (*.json) found", file=display(directory))
    seen: dict[tuple[str, int], tuple[Path, Strategy]] = {}
    for path in paths:
        strategy = load_template(path)
        key = (strategy.id, strategy.version)
        if key in seen:
            reason = f"{strategy.id} v{strategy.version} is already defined in {display(seen[key][0])}"
            raise StrategyError(reason, file=display(path), field="version")
        seen[key] = (path, strategy)
    return StrategyBook(strategies=tuple(strategy for _, strategy in seen.values()))


def load_segments(path: Path | None = None) -> SegmentRules:
    """The segment rules at ``path`` (default: the shipped ``strategies/segments.json``)."""
    return read_model(path or SEGMENTS_FILE, SegmentRules)


def check_references(rules: SegmentRules, book: StrategyBook, file: str = "segments") -> None:
    """Every rule must name a strategy the book holds."""
    known = set(book.ids())
    for index, rule in enumerate(rules.rules):
        if rule.strategy not in known:
            reason = f"unknown strategy {rule.strategy!r} (known: {', '.join(sorted(known))})"
            raise StrategyError(reason, file=file, field=f"rules.{index}.strategy")


@functools.cache
def default_book() -> StrategyBook:
    return load_strategies()


@functools.cache
def default_segments() -> SegmentRules:
    """The shipped segment rules, checked against the shipped strategies."""
    rules = load_segments()
    check_references(rules, default_book(), display(SEGMENTS_FILE))
    return rules
