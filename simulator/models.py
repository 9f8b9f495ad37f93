"""Outcome models chosen by name: `default`, `late_peak`, `pay_cycle`, `always_succeed`, `always_decline:<code>`,
or a JSON file path.

`ConfigModel` interprets a JSON config (the shipped default is `data/default_model.json`):
a first attempt declines with `decline_rate[funding]`, the code drawn from `decline_mix[funding]`; once an
invoice has declined on a card the card keeps that condition, and each later attempt recovers with
`recovery[code] × days_curve(days since first failure) × attempt_decay^(retries-1) × payday × local hour`.
Hard codes (data/declines.json) never recover on the same card. Radar fraud blocks and processing errors
strike any attempt with small fixed rates.

Two optional parts give the other shipped models their shape: `reason_days_curve` replaces `days_curve` for
the codes it names (`late_peak`: temporary holds recover up to day 15 and beyond), and `customer_paydays` gives
every customer a pay cycle of their own, drawn from their id, that replaces the global payday window
(`pay_cycle`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from simulator.catalog import declined, declines, is_hard
from simulator.outcomes import ChargeContext, Outcome, OutcomeModel

DATA = Path(__file__).with_name("data")
DEFAULT_MODEL_FILE = DATA / "default_model.json"
#: The shipped outcome models, by name: every policy is evaluated on each (docs/BENCHMARKS.md).
MODEL_FILES = {
    "default": DEFAULT_MODEL_FILE,
    "late_peak": DATA / "late_peak_model.json",
    "pay_cycle": DATA / "pay_cycle_model.json",
}
MODELS = tuple(MODEL_FILES)


class ModelConfigError(ValueError):
    pass


Curve = list[tuple[float, float]]


class CustomerPaydays(BaseModel):
    """Each customer's own pay cycle: a monthly pay day drawn from `monthly_days` by a hash of the customer id,
    and for a `semi_monthly_share` of customers a second one 14 days later. A retry within `window_days` after a
    pay day gets `on_cycle[code]`, any other day `off_cycle[code]` ("*" is the fallback; missing: 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    monthly_days: dict[int, float]
    semi_monthly_share: float = 0.0
    window_days: int = 2
    on_cycle: dict[str, float]
    off_cycle: dict[str, float]

    def of(self, customer: str) -> tuple[int, ...]:
        """The customer's pay days of the month (stable: a hash of the id, never the run's random state)."""
        digest = hashlib.sha256(f"payday:{customer}".encode()).digest()
        u, v = int.from_bytes(digest[:4], "big") / 2**32, int.from_bytes(digest[4:8], "big") / 2**32
        total, acc = sum(self.monthly_days.values()), 0.0
        first = max(self.monthly_days)
        for day, weight in sorted(self.monthly_days.items()):
            acc += weight / total
            if u < acc:
                first = day
                break
        if v < self.semi_monthly_share:
            return tuple(sorted({first, (first + 13) % 28 + 1}))
        return (first,)

    def multiplier(self, customer: str, day_of_month: int, code: str) -> float:
        on = any(0 <= day_of_month - payday < self.window_days for payday in self.of(customer))
        return _pick(self.on_cycle if on else self.off_cycle, code, 1.0)


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int
    description: str = ""
    decline_rate: dict[str, float]  # by card funding; "*" is the fallback
    decline_mix: dict[str, dict[str, float]]  # by card funding; weights, need not sum to 1
    recovery: dict[str, float]  # per-retry recovery probability by decline_code; "*" is the fallback
    days_curve: list[tuple[float, float]]  # (days since first failure, multiplier), linear in between
    attempt_decay: float = 1.0
    payday_days: list[int] = []
    payday_window_days: int = 1
    payday_multiplier: dict[str, float] = {}
    hour_multipliers: list[tuple[int, int, float]] = []  # [start_hour, end_hour_exclusive, multiplier]
    fraud_rate: float = 0.0
    processing_error_rate: float = 0.0
    mastercard_advice_rate: float = 0.0
    reason_days_curve: dict[str, Curve] = {}  # a code's own curve (replaces days_curve for it)
    customer_paydays: CustomerPaydays | None = None  # replaces payday_days / payday_multiplier when set

    @field_validator("decline_mix")
    @classmethod
    def _mix_codes_are_known(cls, mix: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for funding, weights in mix.items():
            _known(weights, f"decline_mix.{funding}")
        return mix

    @field_validator("recovery", "payday_multiplier")
    @classmethod
    def _codes_are_known(cls, table: dict[str, float]) -> dict[str, float]:
        _known(table, "table")
        return table

    @field_validator("days_curve")
    @classmethod
    def _curve_is_sorted(cls, curve: Curve) -> Curve:
        _sorted(curve)
        return curve

    @field_validator("reason_days_curve")
    @classmethod
    def _curves_are_sorted(cls, curves: dict[str, Curve]) -> dict[str, Curve]:
        _known(dict.fromkeys(curves, 0.0), "reason_days_curve")
        for curve in curves.values():
            _sorted(curve)
        return curves


def _sorted(curve: Curve) -> None:
    if not curve or [d for d, _ in curve] != sorted(d for d, _ in curve):
        raise ValueError("a days curve needs at least one point, sorted by days")


def _known(table: dict[str, float], where: str) -> None:
    unknown = sorted(set(table) - set(declines()) - {"*"})
    if unknown:
        raise ValueError(f"{where}: unknown decline codes {unknown}")


class ConfigModel:
    """The data-driven model; see the module docstring for the formula."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.name = f"{config.id}@{config.version}"

    def decide(self, ctx: ChargeContext) -> Outcome:
        cfg, rng = self.config, ctx.rng
        mastercard = ctx.card.brand == "mastercard" and rng.random() < cfg.mastercard_advice_rate
        if rng.random() < cfg.fraud_rate:
            return declined("fraudulent", with_network_advice=False)
        if rng.random() < cfg.processing_error_rate:
            return declined("processing_error", with_network_advice=False)
        if ctx.previous_decline is None:
            return self._first(ctx, mastercard)
        if rng.random() < self.recovery_probability(ctx, ctx.previous_decline):
            return Outcome.success()
        return declined(ctx.previous_decline, with_network_advice=mastercard)

    def _first(self, ctx: ChargeContext, mastercard: bool) -> Outcome:
        rate = _pick(self.config.decline_rate, ctx.card.funding)
        if ctx.rng.random() >= rate:
            return Outcome.success()
        mix = self.config.decline_mix.get(ctx.card.funding) or next(iter(self.config.decline_mix.values()))
        code = ctx.rng.choices(list(mix), weights=list(mix.values()))[0]
        return declined(code, with_network_advice=mastercard)

    def recovery_probability(self, ctx: ChargeContext, code: str) -> float:
        """The chance this retry succeeds; 0 for hard codes."""
        if is_hard(code):
            return 0.0
        cfg = self.config
        p = _pick(cfg.recovery, code) * self.days_factor(ctx.days_since_first_failure or 0.0, code)
        p *= cfg.attempt_decay ** max(0, ctx.attempt - 2)
        if cfg.customer_paydays is not None:
            p *= cfg.customer_paydays.multiplier(ctx.invoice.customer, ctx.day_of_month, code)
        elif self.is_payday_window(ctx.day_of_month):
            p *= _pick(cfg.payday_multiplier, code, 1.0)
        return min(1.0, p * self.hour_factor(ctx.local_hour))

    def days_factor(self, days: float, code: str = "") -> float:
        points = self.config.reason_days_curve.get(code, self.config.days_curve)
        index = bisect.bisect_right([d for d, _ in points], days)
        if index == 0:
            return points[0][1]
        if index == len(points):
            return points[-1][1]
        (d0, m0), (d1, m1) = points[index - 1], points[index]
        return m0 + (m1 - m0) * (days - d0) / (d1 - d0)

    def is_payday_window(self, day_of_month: int) -> bool:
        window = range(self.config.payday_window_days)
        return any(day_of_month - payday in window for payday in self.config.payday_days)

    def hour_factor(self, hour: int) -> float:
        return next((m for start, end, m in self.config.hour_multipliers if start <= hour < end), 1.0)


def _pick(table: dict[str, float], key: str, fallback: float = 0.0) -> float:
    return table.get(key, table.get("*", fallback))


class AlwaysSucceed:
    name = "always_succeed"

    def decide(self, ctx: ChargeContext) -> Outcome:
        return Outcome.success()


class AlwaysDecline:
    def __init__(self, decline_code: str) -> None:
        declined(decline_code, with_network_advice=False)  # fail fast on an unknown code
        self.decline_code = decline_code
        self.name = f"always_decline:{decline_code}"

    def decide(self, ctx: ChargeContext) -> Outcome:
        return declined(self.decline_code, with_network_advice=ctx.card.brand == "mastercard")


def load_config(path: Path) -> ModelConfig:
    """Parse a model file; errors name the file and the field."""
    try:
        return ModelConfig.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelConfigError(f"{path}: {problems}") from None


def load_model(name: str) -> OutcomeModel:
    """A shipped model (`MODELS`), `always_succeed`, `always_decline:<decline_code>`, or a JSON model's path."""
    if name in MODEL_FILES:
        return ConfigModel(load_config(MODEL_FILES[name]))
    if name == "always_succeed":
        return AlwaysSucceed()
    if name.startswith("always_decline:"):
        return AlwaysDecline(name.split(":", 1)[1])
    if name.endswith(".json") or Path(name).is_file():
        return ConfigModel(load_config(Path(name)))
    raise ModelConfigError(
        f"unknown outcome model {name!r}: use {', '.join(MODELS)}, always_succeed, always_decline:<code> or a JSON file"
    )
