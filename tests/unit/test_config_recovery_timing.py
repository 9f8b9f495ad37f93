"""The recovery timing settings reach the decision context; a bad value is one clear error naming the setting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from actors.planning import make_context_factory
from actors.system import actor_config
from settings import ConfigError, load_settings


def test_the_timing_settings_reach_the_decision_context() -> None:
    settings = load_settings(environ={"PAYRISK_CARD_UPDATE_RETRY_SECONDS": "30", "PAYRISK_JOIN_WINDOW_SECONDS": "90",
                                      "PAYRISK_CLASSIFY_WAIT_SECONDS": "45"}, dotenv=None)
    build = make_context_factory(actor_config(settings, planner="default"))
    ctx = asyncio.run(build("default", datetime(2026, 3, 2, tzinfo=UTC), {}, frozenset(), "own"))
    assert (ctx.resume_delay, ctx.join_window, ctx.classify_wait) == (
        timedelta(seconds=30), timedelta(seconds=90), timedelta(seconds=45))


def test_the_defaults_are_a_minute_ten_minutes_and_two_minutes() -> None:
    build = make_context_factory(actor_config(load_settings(environ={}, dotenv=None), planner="default"))
    ctx = asyncio.run(build("default", datetime(2026, 3, 2, tzinfo=UTC), {}, frozenset(), "own"))
    assert (ctx.resume_delay, ctx.join_window, ctx.classify_wait) == (
        timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=2))


@pytest.mark.parametrize("name", ["PAYRISK_CARD_UPDATE_RETRY_SECONDS", "PAYRISK_JOIN_WINDOW_SECONDS",
                                  "PAYRISK_CLASSIFY_WAIT_SECONDS"])
def test_a_negative_delay_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: "-1"}, dotenv=None)
