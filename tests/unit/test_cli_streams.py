"""Every command's stdout carries only its own output: log lines (structlog and the standard library) go to
stderr from the first one on, so `--json` output stays one parseable object."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from payrisk.cli import main


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The CLI configures logging for its process: give the rest of the test session back what it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


def test_log_lines_never_reach_stdout_of_a_json_command(capsys: pytest.CaptureFixture[str],
                                                        restored_logging: None) -> None:
    assert main(["strategies", "validate", "--json"]) == 0
    structlog.get_logger("payrisk.test").warning("gauges.refresh_failed", error="a warning after the command")
    logging.getLogger("uvicorn.error").warning("a library's warning")
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is True  # exactly one JSON document
    assert "gauges.refresh_failed" in captured.err and "a library's warning" in captured.err
