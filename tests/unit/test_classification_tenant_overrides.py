"""Tenant overrides as data (stored in PostgreSQL, sent over HTTP): the loader's validation, the tenant's view."""

from __future__ import annotations

from typing import Any

import pytest

from actors.domain.classification import Category, ClassificationTableError, classify, default_tables
from actors.domain.classification.loading import check_tenant_overrides, parse_json, tenant_view
from actors.domain.inbound import DeclineInfo

ROW = {"category": "HARD_DECLINE", "reason": "do_not_honor", "explanation": "acme never retries do_not_honor"}


def doc(provider: str = "stripe", version: int = 1, **rows: Any) -> dict[str, Any]:
    return {"provider": provider, "version": version, "rows": rows or {"decline_code": {"do_not_honor": ROW}}}


def error(documents: Any, tenant: str = "acme") -> ClassificationTableError:
    with pytest.raises(ClassificationTableError) as caught:
        check_tenant_overrides(tenant, documents, default_tables(), source="overrides")
    return caught.value


def test_valid_documents_become_the_tenants_view_and_only_theirs() -> None:
    overrides = check_tenant_overrides("acme", [doc()], default_tables(), source="overrides")
    assert [o.tenant for o in overrides] == ["acme"]  # the tenant is filled in from where they are stored
    view = tenant_view(default_tables(), "acme", overrides)
    result = classify("stripe", DeclineInfo(decline_code="do_not_honor"), view)
    assert (result.category, result.table_id) == (Category.HARD_DECLINE, "stripe+acme.v1")
    other = classify("stripe", DeclineInfo(decline_code="do_not_honor"), default_tables().for_tenant("globex"))
    assert other.category == Category.SOFT_DECLINE
    assert classify("adyen", DeclineInfo(decline_code="12"), view).table_id == "adyen"


def test_no_documents_is_the_shipped_view() -> None:
    assert check_tenant_overrides("acme", [], default_tables(), source="overrides") == []
    view = tenant_view(default_tables(), "acme", [])
    assert classify("stripe", DeclineInfo(decline_code="do_not_honor"), view).table_id == "stripe"


@pytest.mark.parametrize(
    ("documents", "field", "problem"),
    [
        ([doc(decline_code={"do_not_honor": {"category": "HARD_DECLINE", "reason": "x"}})],
         "overrides.0: rows.decline_code.do_not_honor.explanation", "required field is missing"),
        ([doc(), doc(decline_code={"x": {**ROW, "category": "NOT_A_CATEGORY"}}, provider="adyen")],
         "overrides.1: rows.decline_code.x.category", "Input should be"),
        ([doc(provider="mollie")], "overrides.0: provider", "unknown provider 'mollie'"),
        ([doc(), doc(version=2)], "overrides.1: tenant", "already overrides stripe"),
        ([{**doc(), "tenant": "globex"}], "overrides.0: tenant", "'globex'"),
        ([{**doc(), "colour": "red"}], "overrides.0: colour", "unknown field"),
        ([doc(decline_code={"my_code": {**ROW, "aliases": ["lost_card"]}})], "overrides.0: rows.decline_code",
         "listed twice"),
        ({"provider": "stripe"}, "overrides: -", "a list"),
        (["stripe"], "overrides.0: -", "object"),
    ],
)
def test_a_bad_document_is_rejected_naming_the_field(documents: Any, field: str, problem: str) -> None:
    caught = error(documents)
    assert f"{caught.file}: {caught.row}".startswith(field), str(caught)
    assert problem in caught.problem, str(caught)


def test_json_with_a_duplicate_key_is_rejected_like_a_file() -> None:
    with pytest.raises(ClassificationTableError) as caught:
        parse_json('{"overrides": [{"provider": "stripe", "provider": "adyen"}]}', "body")
    assert caught.value.row == "overrides.0.provider" and "duplicate" in caught.value.problem
    with pytest.raises(ClassificationTableError) as bad:
        parse_json("{nope", "body")
    assert "invalid JSON" in bad.value.problem
    assert parse_json(b'{"a": [1, {"b": 2}]}', "body") == {"a": [1, {"b": 2}]}
