"""The one error type of the strategies layer: a rule file that cannot be used, named precisely."""

from __future__ import annotations

import re

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


_FIELD_PREFIX = re.compile(r"^(?P<field>[A-Za-z_][\w.]*): (?P<reason>.+)$", re.DOTALL)
_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def from_validation(exc: ValidationError, file: str) -> StrategyError:
    """Turn pydantic's report into a StrategyError naming the first bad field (and how many others)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    parts = [str(part) for part in first["loc"] if part != "[key]"]
    reason = _FRIENDLY.get(first["type"], first["msg"]).removeprefix("Value error, ")
    inner = _FIELD_PREFIX.match(reason)
    if inner:  # our cross-field validators start their message with the field they blame
        parts.append(inner["field"])
        reason = inner["reason"]
    field = ".".join(parts) or "-"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return StrategyError(reason, file=file, field=field)
