"""The one error type of the strategies layer: a rule file that cannot be used, named precisely."""

from __future__ import annotations

from pydantic import ValidationError


class StrategyError(Exception):
    """A strategy, segment or calendar file (or a lookup into them) is invalid.

    The message is one line, ``file: field: reason``, so start-up and the CLI can print it as is.
    """

    def __init__(self, reason: str, *, file: str = "<memory>", field: str = "-") -> None:
        self.file = file
        self.field = field
        self.reason = reason
        super().__init__(f"{file}: {field}: {reason}")


_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def from_validation(exc: ValidationError, file: str) -> StrategyError:
    """Turn pydantic's report into a StrategyError naming the first bad field (and how many others)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"] if part != "[key]") or "-"
    reason = _FRIENDLY.get(first["type"], first["msg"])
    reason = reason.removeprefix("Value error, ")
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return StrategyError(reason, file=file, field=field)
