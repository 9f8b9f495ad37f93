"""The collector tuning every gateway worker and actor applies once started (settings/process.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from settings import ConfigError, load_settings
from settings.process import DEFAULT_THRESHOLD, tune_gc


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_start_up_objects_are_frozen_and_generation_0_waits_longer(restored: None) -> None:
    kept = [object() for _ in range(10)]  # noqa: F841 - alive when frozen
    assert tune_gc() == DEFAULT_THRESHOLD
    assert gc.get_threshold()[0] == DEFAULT_THRESHOLD and gc.get_freeze_count() > 0


def test_0_leaves_python_alone_and_the_setting_is_checked_at_the_edge(restored: None) -> None:
    before = gc.get_threshold()
    assert tune_gc(0) == 0 and gc.get_threshold() == before
    assert tune_gc(5000) == 5000 and gc.get_threshold()[0] == 5000
    assert load_settings(environ={"PAYRISK_GC_THRESHOLD": "5000"}, dotenv=None).gateway.gc_threshold == 5000
    with pytest.raises(ConfigError, match="PAYRISK_GC_THRESHOLD"):
        load_settings(environ={"PAYRISK_GC_THRESHOLD": "many"}, dotenv=None)
