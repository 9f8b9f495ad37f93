"""Outcome models chosen by name: `default`, `always_succeed`, `always_decline:<code>`, or a JSON file path.

`ConfigModel` interprets a JSON config (the shipped default is `data/default_model.json`):
a first attempt declines with `decline_rate[funding]`, the code drawn from `decline_mix[funding]`; once an
invoice has declined on a card the card keeps that condition, and each later attempt recovers with
`recovery[code] × days_curve(days since first failure) × attempt_decay^(retries-1) × payday × local hour`.
Hard codes (data/declines.json) never recover on the same card. Radar fraud blocks and processing errors
strike any attempt with small fixed rates.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from simulator.catalog import declined, declines, is_hard
from simulator.outcomes import ChargeContext, Outcome, OutcomeModel

DEFAULT_MODEL_FILE = Path(__file__).with_name("data") / "default_model.json"


class ModelConfigError(ValueError):
    pass


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
    def _curve_is_sorted(cls, curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not curve or [d for d, _ in curve] != sorted(d for d, _ in curve):
            raise ValueError("days_curve needs at least one point, sorted by days")
        return curve


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
        p = _pick(cfg.recovery, code) * self.days_factor(ctx.days_since_first_failure or 0.0)
        p *= cfg.attempt_decay ** max(0, ctx.attempt - 2)
        if self.is_payday_window(ctx.day_of_month):
            p *= _pick(cfg.payday_multiplier, code, 1.0)
        return min(1.0, p * self.hour_factor(ctx.local_hour))

    def days_factor(self, days: float) -> float:
        points = self.config.days_curve
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
    """`default`, `always_succeed`, `always_decline:<decline_code>`, or the path of a JSON model config."""
    if name == "default":
        return ConfigModel(load_config(DEFAULT_MODEL_FILE))
    if name == "always_succeed":
        return AlwaysSucceed()
    if name.startswith("always_decline:"):
        return AlwaysDecline(name.split(":", 1)[1])
    if name.endswith(".json") or Path(name).is_file():
        return ConfigModel(load_config(Path(name)))
    raise ModelConfigError(
        f"unknown outcome model {name!r}: use default, always_succeed, always_decline:<code> or a JSON file"
    )
