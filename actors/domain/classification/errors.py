"""The errors of the classification layer: a table that cannot be used, or a provider we have no table for."""

from __future__ import annotations

import re

from pydantic import ValidationError

_FRIENDLY = {"extra_forbidden": "unknown field", "missing": "required field is missing"}
_BLAMES = re.compile(r"^(?P<row>[\w.+-]+): (?P<problem>.+)$", re.DOTALL)  # our validators name their row


class ClassificationError(Exception):
    """Base of every classification error."""


class ClassificationTableError(ClassificationError):
    """A table or override file is invalid. The message is one line: ``file: row: problem``."""

    def __init__(self, file: str, row: str, problem: str) -> None:
        self.file = file
        self.row = row
        self.problem = problem
        super().__init__(f"{file}: {row}: {problem}")


class UnknownProviderError(ClassificationError, KeyError):
    """No table is loaded for this provider (the gateway only routes providers it knows)."""

    def __str__(self) -> str:
        return str(self.args[0])


def from_validation(exc: ValidationError, file: str) -> ClassificationTableError:
    """Name the first bad row and field pydantic found (and how many other problems there are)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    parts = [str(part) for part in first["loc"] if part != "[key]"]
    problem = _FRIENDLY.get(first["type"], first["msg"]).removeprefix("Value error, ")
    blamed = _BLAMES.match(problem)
    if blamed:
        parts.append(blamed["row"])
        problem = blamed["problem"]
    row = ".".join(parts) or "-"
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ClassificationTableError(file, row, problem)
