"""`payrisk strategies validate|explain`: thin wrappers around strategies.cli."""

from __future__ import annotations

import argparse
from pathlib import Path

from payrisk.errors import CliError


def cmd_validate(args: argparse.Namespace) -> int:
    from strategies.cli import validate

    return int(validate(Path(args.file) if args.file else None))


def cmd_explain(args: argparse.Namespace) -> int:
    raise CliError("strategies explain --customer: reading a stored profile is not available yet; "
                   "see docs/STRATEGIES.md for strategies.cli.explain")
