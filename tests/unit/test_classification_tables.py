"""Loading tables and overrides: a bad file stops loading with a message naming file, row and problem."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors.domain.classification import (
    Category,
    ClassificationTableError,
    classify,
    default_tables,
    load_tables,
)
from actors.domain.classification.loading import TABLES_DIR
from actors.domain.inbound import DeclineInfo

Json = dict[str, Any]


@pytest.fixture
def tables_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped tables to break."""
    return Path(shutil.copytree(TABLES_DIR, tmp_path / "tables"))


def edit(path: Path, change: Callable[[Json], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def write(path: Path, data: Json) -> Path:
    path.write_text(json.dumps(data))
    return path


def override(tenant: str = "acme", provider: str = "stripe", version: int = 2, **rows: Json) -> Json:
    row = {
        "category": "HARD_DECLINE",
        "reason": "do_not_honor",
        "explanation": "acme never retries do_not_honor",
    }
    return {
        "tenant": tenant,
        "provider": provider,
        "version": version,
        "rows": rows or {"decline_code": {"do_not_honor": row}},
    }


def load_error(directory: Path, overrides: Path | None = None) -> ClassificationTableError:
    with pytest.raises(ClassificationTableError) as caught:
        load_tables(directory, overrides)
    return caught.value


# --------------------------------------------------------------------------------------------------- loading


def test_the_shipped_tables_load_with_one_versioned_table_per_provider() -> None:
    tables = load_tables()
    assert sorted(tables.providers) == ["adyen", "braintree", "generic", "paddle", "stripe"]
    assert all(table.version >= 1 for table in tables.providers.values())


def test_default_tables_are_parsed_once_per_process() -> None:
    assert default_tables() is default_tables()


def test_codes_are_matched_case_insensitively_and_listed_lower_case() -> None:
    table = default_tables().table("stripe")
    assert table.find("decline_code", " Lost_Card ") is table.find("decline_code", "lost_card")
    assert "lost_card" in table.codes("decline_code") and table.codes("no_such_section") == frozenset()


# --------------------------------------------------------------------------------------------- invalid files


def test_a_row_missing_its_category_names_the_file_the_row_and_the_field(tables_dir: Path) -> None:
    edit(tables_dir / "stripe.json", lambda d: d["rows"]["decline_code"]["lost_card"].pop("category"))
    error = load_error(tables_dir)
    assert error.file.endswith("stripe.json")
    assert error.row == "rows.decline_code.lost_card.category"
    assert error.problem == "required field is missing"
    assert str(error) == f"{error.file}: rows.decline_code.lost_card.category: required field is missing"


def test_an_unknown_category_is_rejected_with_the_allowed_ones(tables_dir: Path) -> None:
    edit(tables_dir / "adyen.json", lambda d: d["rows"]["decline_code"]["12"].update(category="MAYBE_LATER"))
    error = load_error(tables_dir)
    assert error.file.endswith("adyen.json") and error.row == "rows.decline_code.12.category"
    assert "HARD_DECLINE" in error.problem and "SOFT_DECLINE" in error.problem


def test_a_duplicate_row_in_the_json_is_caught_even_though_json_would_keep_the_last(tables_dir: Path) -> None:
    path = tables_dir / "paddle.json"
    text = path.read_text()
    row = '"declined": {"category": "HARD_DECLINE", "reason": "x", "explanation": "again"},'
    path.write_text(text.replace('"declined":', row + '\n      "declined":', 1))
    error = load_error(tables_dir)
    assert (error.row, error.problem) == ("rows.error_code.declined", "duplicate row (the key appears twice)")


@pytest.mark.parametrize(
    ("version", "problem"), [(0, "greater than or equal to 1"), ("3", "valid integer"), (None, "")]
)
def test_a_bad_version_is_rejected(tables_dir: Path, version: object, problem: str) -> None:
    edit(
        tables_dir / "braintree.json",
        lambda d: d.pop("version") if version is None else d.update(version=version),
    )
    error = load_error(tables_dir)
    assert error.row == "version" and problem in error.problem
    assert error.problem == "required field is missing" or version is not None


def test_an_unknown_field_in_a_row_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "stripe.json", lambda d: d["rows"]["advice_code"]["try_again_later"].update(retry=True))
    error = load_error(tables_dir)
    assert (error.row, error.problem) == ("rows.advice_code.try_again_later.retry", "unknown field")


def test_an_unknown_section_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "stripe.json", lambda d: d["rows"].update(iso_code={}))
    assert load_error(tables_dir).row == "rows.iso_code"


def test_a_stop_signal_that_would_be_retried_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "stripe.json", lambda d: d["rows"]["advice_code"]["try_again_later"].update(stop=True))
    error = load_error(tables_dir)
    assert error.row == "rows.advice_code.try_again_later.stop" and "never be retried" in error.problem


def test_a_stop_signal_outside_the_advice_and_outcome_sections_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "stripe.json", lambda d: d["rows"]["decline_code"]["lost_card"].update(stop=True))
    error = load_error(tables_dir)
    assert error.row == "rows.decline_code.lost_card" and "stop applies only to" in error.problem


def test_an_alias_that_repeats_another_code_is_rejected(tables_dir: Path) -> None:
    edit(
        tables_dir / "adyen.json",
        lambda d: d["rows"]["decline_code"]["2"].update(aliases=["refused", "Referral"]),
    )
    error = load_error(tables_dir)
    assert error.row in ("rows.decline_code.2", "rows.decline_code.3") and "listed twice" in error.problem


def test_an_http_status_key_must_be_a_status_or_a_class(tables_dir: Path) -> None:
    row = {"category": "RATE_LIMITED", "reason": "slow", "explanation": "slow"}
    edit(tables_dir / "stripe.json", lambda d: d["rows"]["http_status"].update(teapot=row))
    assert load_error(tables_dir).row == "rows.http_status.teapot"


def test_overlapping_ranges_are_rejected(tables_dir: Path) -> None:
    row = {"category": "SOFT_DECLINE", "reason": "generic_decline", "explanation": "overlap"}
    edit(tables_dir / "braintree.json", lambda d: d["rows"]["decline_code"].update({"2990..3500": row}))
    error = load_error(tables_dir)
    assert error.row == "rows.decline_code.2990..3500" and "overlaps" in error.problem


def test_a_fallback_without_an_attempt_cap_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "paddle.json", lambda d: d["fallback"].pop("max_attempts_cap"))
    error = load_error(tables_dir)
    assert error.row == "fallback" and "max_attempts_cap" in error.problem


def test_a_table_whose_id_differs_from_its_file_name_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "paddle.json", lambda d: d.update(id="paddle_classic"))
    error = load_error(tables_dir)
    assert error.row == "id" and "does not match the file name" in error.problem


def test_invalid_json_names_the_line(tables_dir: Path) -> None:
    (tables_dir / "paddle.json").write_text('{"id": "paddle",\n "version": }')
    error = load_error(tables_dir)
    assert error.row == "line 2" and "invalid JSON" in error.problem


def test_a_visa_code_in_two_categories_is_rejected(tables_dir: Path) -> None:
    edit(tables_dir / "networks.json", lambda d: d["visa_categories"]["4"]["codes"].append("51"))
    error = load_error(tables_dir)
    assert error.file.endswith("networks.json") and error.row == "visa_categories.4"
    assert "'51' is already in category 2" in error.problem


def test_a_folder_without_provider_tables_is_rejected(tables_dir: Path) -> None:
    for path in tables_dir.glob("*.json"):
        if path.name != "networks.json":
            path.unlink()
    assert "no provider tables" in load_error(tables_dir).problem


def test_a_missing_network_table_is_rejected(tables_dir: Path) -> None:
    (tables_dir / "networks.json").unlink()
    error = load_error(tables_dir)
    assert error.file.endswith("networks.json") and "cannot read file" in error.problem


def test_several_problems_are_counted_in_the_message(tables_dir: Path) -> None:
    edit(
        tables_dir / "stripe.json",
        lambda d: d["rows"]["decline_code"]["lost_card"].update(category="X", reason="Y!"),
    )
    assert "(and 1 more problem)" in load_error(tables_dir).problem


# ------------------------------------------------------------------------------------------------- overrides


def test_a_tenant_override_changes_only_that_tenants_view(tmp_path: Path) -> None:
    tables = load_tables(overrides=write(tmp_path / "acme.json", override()))
    decline = DeclineInfo(decline_code="do_not_honor")
    acme = classify("stripe", decline, tables.for_tenant("acme"))
    other = classify("stripe", decline, tables.for_tenant("globex"))
    assert acme.category == Category.HARD_DECLINE and acme.table_id == "stripe+acme.v2"
    assert other.category == Category.SOFT_DECLINE and other.table_id == "stripe"
    assert classify("stripe", decline, tables).category == Category.SOFT_DECLINE


def test_an_override_keeps_every_row_it_does_not_replace(tmp_path: Path) -> None:
    tables = load_tables(overrides=write(tmp_path / "acme.json", override())).for_tenant("acme")
    assert classify("stripe", DeclineInfo(decline_code="lost_card"), tables).reason == "lost_or_stolen"
    assert classify("adyen", DeclineInfo(decline_code="12"), tables).table_id == "adyen"


def test_an_override_can_add_a_code_the_shipped_table_lacks(tmp_path: Path) -> None:
    row = {
        "category": "SOFT_DECLINE",
        "reason": "partner_generic_decline",
        "explanation": "local method decline",
    }
    path = write(tmp_path / "acme.json", override(decline_code={"partner_generic_decline": row}))
    result = classify(
        "stripe",
        DeclineInfo(decline_code="partner_generic_decline"),
        load_tables(overrides=path).for_tenant("acme"),
    )
    assert not result.unknown and result.reason == "partner_generic_decline"


def test_a_folder_of_overrides_serves_several_tenants_and_views_are_reused(tmp_path: Path) -> None:
    folder = tmp_path / "overrides"
    folder.mkdir()
    write(folder / "acme.json", override())
    stops = {
        "category": "HARD_DECLINE",
        "reason": "generic_decline",
        "explanation": "initech stops on declined",
    }
    write(folder / "initech.json", override(tenant="initech", provider="paddle", error_code={"declined": stops}))
    tables = load_tables(overrides=folder)
    assert sorted(tables.tenant_tables) == ["acme", "initech"]
    view = tables.for_tenant("initech")
    assert view is tables.for_tenant("initech") and view.for_tenant("initech") is view
    assert view.for_tenant("acme") is tables.for_tenant("acme")
    assert classify("paddle", DeclineInfo(error_code="declined"), view).category == Category.HARD_DECLINE


def test_an_override_with_an_invalid_row_names_the_override_file_and_row(tmp_path: Path) -> None:
    bad = {"category": "HARD_DECLINE", "reason": "do_not_honor"}  # no explanation
    path = write(tmp_path / "acme.json", override(decline_code={"do_not_honor": bad}))
    error = load_error(TABLES_DIR, path)
    assert error.file.endswith("acme.json") and error.row == "rows.decline_code.do_not_honor.explanation"


def test_an_override_that_breaks_the_merged_table_names_the_override_file(tmp_path: Path) -> None:
    row = {
        "category": "SOFT_DECLINE",
        "reason": "generic_decline",
        "aliases": ["lost_card"],
        "explanation": "clash",
    }
    path = write(tmp_path / "acme.json", override(decline_code={"my_code": row}))
    error = load_error(TABLES_DIR, path)
    assert error.file.endswith("acme.json") and "listed twice" in error.problem


def test_an_override_for_an_unknown_provider_is_rejected(tmp_path: Path) -> None:
    error = load_error(TABLES_DIR, write(tmp_path / "acme.json", override(provider="mollie")))
    assert error.row == "provider" and "unknown provider 'mollie'" in error.problem


def test_two_overrides_of_one_tenant_and_provider_are_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "overrides"
    folder.mkdir()
    write(folder / "a.json", override())
    write(folder / "b.json", override(version=3))
    error = load_error(TABLES_DIR, folder)
    assert error.file.endswith("b.json") and error.row == "tenant" and "already overrides stripe" in error.problem


def test_an_override_without_a_version_is_rejected(tmp_path: Path) -> None:
    data = override()
    data.pop("version")
    assert load_error(TABLES_DIR, write(tmp_path / "acme.json", data)).row == "version"
