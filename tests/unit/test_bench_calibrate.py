"""The machine-speed yardstick of the benchmarks (bench/calibrate.py) and its place in bench.demo's line."""

from __future__ import annotations

import pytest

from bench.calibrate import calibrate, describe, main, workload
from bench.demo import _calibration


def test_the_workload_does_the_same_work_every_time_and_more_rounds_change_it() -> None:
    assert workload(200) == workload(200)
    assert workload(200) != workload(201)


def test_calibration_reports_best_median_and_worst_in_order() -> None:
    result = calibrate(tries=3, rounds=100)
    assert 0 < result["best"] <= result["median"] <= result["worst"]
    assert describe(result).startswith(f"calibration {result['best']:.3f} s best")


def test_the_command_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--tries", "1", "--json"])
    out = capsys.readouterr().out.strip()
    assert out.startswith("{") and '"best"' in out and "\n" not in out


def test_the_demo_line_shows_the_best_time_before_and_after_the_run() -> None:
    result = {"calibration": {"before": {"best": 0.2031}, "after": {"best": 0.3349}}}
    assert _calibration(result) == "; calibration 0.203 / 0.335 s"
    assert _calibration({}) == ""
