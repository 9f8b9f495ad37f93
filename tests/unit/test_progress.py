"""The progress bar of demo / benchmarks: an ETA on a terminal; one plain, unwrapped line per step elsewhere."""

from __future__ import annotations

import io

from payrisk.progress import progress_bar

LONG = "day   1/3  failures " + "x" * 200


def test_piped_output_is_one_unwrapped_line_per_step_and_no_bar() -> None:
    out = io.StringIO()
    with progress_bar(out, 3, "simulated days") as bar:
        for day in range(3):
            bar.advance(1, LONG.replace("1/3", f"{day + 1}/3"))
    lines = out.getvalue().splitlines()
    assert lines == [LONG.replace("1/3", f"{n}/3") for n in (1, 2, 3)]
    assert "\x1b" not in out.getvalue() and "ETA" not in out.getvalue()


def test_a_terminal_gets_a_bar_with_the_count_and_an_eta() -> None:
    out = io.StringIO()
    with progress_bar(out, 4, "simulated days", force_terminal=True) as bar:
        bar.advance(1, "day 1/4")
        bar.advance(1)
    text = out.getvalue()
    assert "day 1/4" in text and "ETA" in text and "simulated days" in text
