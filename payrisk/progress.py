"""A progress bar with an ETA (rich) for long commands: demo, chaos, benchmarks.

On a terminal the bar redraws in place and each reported line scrolls above it; elsewhere (a pipe, CI, `--json`
runs whose progress goes to stderr) only the lines are written, unwrapped, one per step, and the bar stays silent:
logs stay greppable line by line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Steps:
    def __init__(self, progress: Progress, task: int, console: Console) -> None:
        self._progress, self._task, self._console = progress, task, console

    def advance(self, steps: float = 1, line: str | None = None) -> None:
        if line is not None:
            self._console.print(line, soft_wrap=True, markup=False, highlight=False)
        self._progress.advance(self._task, steps)  # type: ignore[arg-type]

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)  # type: ignore[arg-type]


@contextmanager
def progress_bar(out: TextIO, total: float, description: str, force_terminal: bool | None = None
                 ) -> Iterator[Steps]:
    console = Console(file=out, soft_wrap=True, force_terminal=force_terminal)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield Steps(progress, task, console)
