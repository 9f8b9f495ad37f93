"""Cheap checks of the benchmark scripts: they parse, `--help` works, inputs are what the gateway accepts."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bench import bodies, ceilings, profile, run
from gateway.providers import stripe as stripe_provider


def _one_line(duplicates: float = 0.0, count: int = 1) -> list[bytes]:
    return list(bodies.lines("t1", count, 1_800_000_000, duplicates, random.Random(3), secret="whsec_x"))


def test_a_generated_webhook_is_about_two_kilobytes_and_verifies_with_its_secret() -> None:
    signature, body = _one_line()[0].split(b"\t", 1)
    assert 1800 <= len(body) <= 2300
    stripe_provider.verify(body, signature.decode(), ["whsec_x"], tolerance=300, now=1_800_000_000)


def test_a_generated_webhook_normalizes_to_a_payment_failure_of_its_customer() -> None:
    body = _one_line()[0].split(b"\t", 1)[1]
    events = stripe_provider.normalize(stripe_provider.parse_envelope(body))
    assert [e.kind.value for e in events] == ["payment_failed"]
    assert events[0].customer_id is not None and events[0].customer_id.startswith("cus_b")


def test_a_fifth_of_the_lines_repeat_earlier_ones_when_duplicates_are_asked_for() -> None:
    made = _one_line(duplicates=0.2, count=2000)
    repeated = len(made) - len(set(made))
    assert 300 < repeated < 500


def test_all_lines_are_distinct_without_duplicates() -> None:
    made = _one_line(count=500)
    assert len(set(made)) == 500


def test_the_lines_file_counts_its_distinct_events(tmp_path: Path) -> None:
    path = tmp_path / "b.lines"
    distinct = bodies.write(path, "t2", 1000, 1_800_000_000, duplicates=0.2)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1000 and distinct == len(set(lines))


def test_the_pgbench_script_has_no_accidental_variables() -> None:
    script = ceilings.pgbench_script()
    assert re.findall(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)", script)  # `::jsonb` is a cast == ["id"]
    assert "ON CONFLICT DO NOTHING" in script


def test_a_profile_summary_names_the_buckets_where_time_goes(tmp_path: Path) -> None:
    collapsed = tmp_path / "p.txt"
    collapsed.write_text(
        "main (a.py:1);verify_header (stripe/_webhook.py:179) 3\n"
        "main (a.py:1);_send_query_prepared (psycopg/_cursor_base.py:602) 1\n"
    )
    summary = profile.summarize(collapsed)
    assert "75.0%  signature check (stripe SDK HMAC)" in summary
    assert "25.0%  PostgreSQL client (psycopg)" in summary


def test_the_driver_help_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--help"])
    assert exit_info.value.code == 0
    assert "{all,ceilings,ingest,profile,report}" in capsys.readouterr().out


def test_the_driver_refuses_load_runs_longer_than_thirty_seconds() -> None:
    with pytest.raises(SystemExit) as exit_info:
        run.main(["ingest", "--seconds", "31"])
    assert exit_info.value.code == 2


def test_the_wrk_script_defines_the_hooks_wrk_calls() -> None:
    lua = (Path(bench_root()) / "webhooks.lua").read_text()
    for hook in (
        "function setup(",
        "function init(",
        "function request(",
        "function response(",
        "function done(",
    ):
        assert hook in lua


def bench_root() -> Path:
    return Path(run.__file__).parent
