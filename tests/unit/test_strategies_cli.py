"""The helpers behind `payrisk strategies validate [FILE]` and `payrisk strategies explain`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from strategies.cli import EXIT_INVALID, EXIT_OK, explain, validate
from strategies.loader import SEGMENTS_FILE, TEMPLATES_DIR
from strategies.segments import CustomerProfile, SegmentRule, SegmentRules

NOW = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)


def run_validate(path: Path | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = validate(path, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_validating_the_shipped_rules_succeeds_and_lists_them() -> None:
    code, out, err = run_validate(None)
    assert (code, err) == (EXIT_OK, "")
    assert out.startswith(
        "ok: 13 strategies (aggressive v1, aggressive v2, aggressive v3, conservative v1, conservative v2, "
        "conservative v3, holdout_baseline v1, new_customer v1, new_customer v2, new_customer v3, standard v1, "
        "standard v2, standard v3); "
    )
    assert "10 segment rules" in out and "countries" in out


def test_validating_one_file_of_each_kind_recognises_it() -> None:
    assert "strategy standard v1" in run_validate(TEMPLATES_DIR / "standard.json")[1]
    assert "10 segment rules" in run_validate(SEGMENTS_FILE)[1]
    assert "countries" in run_validate(SEGMENTS_FILE.parent / "countries.json")[1]
    assert "13 strategies" in run_validate(TEMPLATES_DIR)[1]


def test_a_bad_file_prints_one_line_naming_file_field_and_reason_and_exits_2(tmp_path: Path) -> None:
    doc = json.loads((TEMPLATES_DIR / "standard.json").read_text(encoding="utf-8"))
    doc["categories"]["SOFT_DECLINE"]["schedule"]["steps"] = [1, 3, 2, 12]
    path = tmp_path / "standard.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    code, out, err = run_validate(path)
    assert (code, out) == (EXIT_INVALID, "")
    assert err.count("\n") == 1
    assert err.startswith(
        f"invalid: {path}: categories.SOFT_DECLINE.retry.schedule.ladder.steps: ladder must"
    )


def test_a_file_that_is_not_json_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nope", encoding="utf-8")
    code, _, err = run_validate(path)
    assert code == EXIT_INVALID and "invalid JSON at line 1" in err


def test_explain_prints_segment_strategy_next_plan_and_the_projected_schedule() -> None:
    out = io.StringIO()
    profile = CustomerProfile(customer_id="cus_7", country="DE", currency="eur", mrr=90000, tenure_days=400)
    code = explain(profile, now=NOW, reason="do_not_honor", brand="visa", visa_category=4, out=out)
    lines = out.getvalue().splitlines()
    assert code == EXIT_OK
    assert lines[0] == "customer cus_7: segment high_value (rule 1) → strategy aggressive v3"
    assert lines[1].startswith(
        "next: retry [email payment_failed] — attempt 2 of 8 on Tue 10 Mar 11:00 Europe/Berlin"
    )
    assert lines[2] == "if every retry fails the same way:"
    assert len(lines) == 3 + 8 and lines[-1].startswith("  final [email final_notice]")


def test_explain_reports_a_segment_naming_an_unknown_strategy() -> None:
    rules = SegmentRules(
        id="r", version=1, description="d", rules=(SegmentRule(segment="all", strategy="gone"),)
    )
    err = io.StringIO()
    code = explain(CustomerProfile(customer_id="c"), now=NOW, rules=rules, out=io.StringIO(), err=err)
    assert code == EXIT_INVALID
    assert "unknown strategy 'gone'" in err.getvalue()


def test_explain_shows_alerts_for_a_new_customer() -> None:
    out = io.StringIO()
    explain(CustomerProfile(customer_id="c", country="US", tenure_days=2), now=NOW, out=out)
    assert "[alert first_failure]" in out.getvalue()


def test_validate_and_explain_print_one_json_object_when_asked(tmp_path: Path) -> None:
    out = io.StringIO()
    assert validate(None, out=out, as_json=True) == EXIT_OK
    assert json.loads(out.getvalue())["ok"] is True
    bad = tmp_path / "broken.json"
    bad.write_text('{"id": "x"}')
    out = io.StringIO()
    assert validate(bad, out=out, as_json=True) == EXIT_INVALID
    assert json.loads(out.getvalue())["ok"] is False and json.loads(out.getvalue())["error"]
    out = io.StringIO()
    profile = CustomerProfile(customer_id="c", country="US", tenure_days=400, mrr=60000)
    assert explain(profile, now=NOW, reason="insufficient_funds", out=out, as_json=True) == EXIT_OK
    doc = json.loads(out.getvalue())
    assert (doc["customer"], doc["segment"]) == ("c", "high_value")
    assert doc["next"]["action"] == "retry" and doc["schedule"] and doc["strategy"]["id"]
