"""Reading one rule file into a frozen model, with every failure turned into a StrategyError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from strategies.errors import StrategyError, from_validation

PACKAGE_DIR = Path(__file__).resolve().parent

M = TypeVar("M", bound=BaseModel)


def display(path: Path) -> str:
    """The path as people should read it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_model(path: Path, model: type[M]) -> M:
    """Parse ``path`` as JSON into ``model``; a missing file, bad JSON or bad content raise StrategyError."""
    name = display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StrategyError(f"cannot read file ({exc.strerror or exc})", file=name) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StrategyError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=name
        ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, name) from exc
