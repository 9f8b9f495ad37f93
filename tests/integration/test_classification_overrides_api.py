"""Tenant classification overrides on a running system: PUT over real HTTP, stored in PostgreSQL, picked up by
the shards' classifier cache within its TTL; another tenant is never affected."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from actors.planning import TenantClassifiers, classifier_for, make_context_factory, tenant_classifier
from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer
from tests.support.servers import ServerThread

#: the operator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}

ROW = {"category": "HARD_DECLINE", "reason": "partner_lost_card", "explanation": "the partner's lost card code"}
CODE = {"decline_code": "zz_partner_lost"}


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, platform_key: str) -> Iterator[str]:
    AUTH.update(bearer(platform_key))  # the tenants here are made per test: a platform admin acts for them
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600)  # fmt: skip
    with ServerThread(create_app(settings)) as server:
        yield server.url


def new_tenant(database_url: str) -> str:
    tenant = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
    return tenant


def url(gateway: str, tenant: str) -> str:
    return f"{gateway}/api/tenants/{tenant}/classification-overrides"


def body(version: int = 1, row: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"overrides": [{"provider": "stripe", "version": version, "description": "partner codes",
                           "rows": {"decline_code": {"zz_partner_lost": row or ROW}}}]}


def test_an_override_put_over_http_is_used_for_that_tenant_only(gateway: str, database_url: str) -> None:
    acme, globex = new_tenant(database_url), new_tenant(database_url)
    empty = httpx.get(url(gateway, acme), headers=AUTH, timeout=10)
    assert empty.status_code == 200 and empty.json() == {"tenant_id": acme, "revision": 0, "updated_at": None,
                                                         "overrides": []}
    put = httpx.put(url(gateway, acme), json=body(), headers=AUTH, timeout=10)
    assert put.status_code == 200, put.text
    assert put.json()["revision"] == 1 and put.json()["overrides"][0]["tenant"] == acme
    got = httpx.get(url(gateway, acme), headers=AUTH, timeout=10).json()
    assert got["revision"] == 1 and got["overrides"][0]["rows"]["decline_code"]["zz_partner_lost"] == ROW

    async def check() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            ours = (await tenant_classifier(conn, acme))("stripe", CODE)
            theirs = (await tenant_classifier(conn, globex))("stripe", CODE)
        assert (ours["category"], ours["reason"], ours["unknown"]) == ("HARD_DECLINE", "partner_lost_card", False)
        assert ours["table_id"] == f"stripe+{acme}.v1"
        assert (theirs["category"], theirs["unknown"], theirs["table_id"]) == ("SOFT_DECLINE", True, "stripe")
        # the context the shard builds for the tenant classifies with the refreshed tables (no signature change)
        build = make_context_factory({"planner": "default"})
        ctx = await build(acme, datetime.now(UTC), {}, frozenset(), "own")
        assert ctx.classify("stripe", CODE)["category"] == "HARD_DECLINE"
        assert classifier_for(globex)("stripe", CODE)["category"] == "SOFT_DECLINE"

    import asyncio

    asyncio.run(check())


def test_a_changed_override_is_picked_up_after_the_ttl(gateway: str, database_url: str) -> None:
    tenant = new_tenant(database_url)
    clock = [100.0]
    cache = TenantClassifiers(ttl=5.0, clock=lambda: clock[0])
    assert httpx.put(url(gateway, tenant), json=body(), headers=AUTH, timeout=10).status_code == 200

    async def category() -> str:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return str((await cache.refresh(conn, tenant))("stripe", CODE)["category"])

    import asyncio

    assert asyncio.run(category()) == "HARD_DECLINE"
    soft = {**ROW, "category": "SOFT_DECLINE", "reason": "partner_soft"}
    assert httpx.put(url(gateway, tenant), json=body(2, soft), headers=AUTH, timeout=10).json()["revision"] == 2
    clock[0] += 1.0
    assert asyncio.run(category()) == "HARD_DECLINE"  # within the TTL: no query
    clock[0] += 5.0
    assert asyncio.run(category()) == "SOFT_DECLINE"
    assert httpx.put(url(gateway, tenant), json={"overrides": []}, headers=AUTH, timeout=10).json()["revision"] == 3
    clock[0] += 6.0
    async def table() -> str:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return str((await cache.refresh(conn, tenant))("stripe", CODE)["table_id"])

    assert asyncio.run(table()) == "stripe"  # cleared: back to the shipped tables


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(row={"category": "HARD_DECLINE", "reason": "x"}),
         "overrides.0.rows.decline_code.zz_partner_lost.explanation"),
        (body(row={**ROW, "category": "MAYBE"}), "overrides.0.rows.decline_code.zz_partner_lost.category"),
        ({"overrides": [{**body()["overrides"][0], "provider": "mollie"}]}, "overrides.0.provider"),
        ({"overrides": [{**body()["overrides"][0], "version": 0}]}, "overrides.0.version"),
        ({"overrides": [{**body()["overrides"][0], "tenant": "someone_else"}]}, "overrides.0.tenant"),
        ({"rules": []}, "rules"),
        ({}, "overrides"),
    ],
)
def test_a_bad_override_is_a_400_problem_naming_the_field(gateway: str, database_url: str,
                                                          payload: dict[str, Any], field: str) -> None:
    tenant = new_tenant(database_url)
    response = httpx.put(url(gateway, tenant), json=payload, headers=AUTH, timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field and field in problem["detail"], problem
    assert problem["type"].endswith("/invalid-classification-override")
    assert httpx.get(url(gateway, tenant), headers=AUTH, timeout=10).json()["revision"] == 0  # nothing stored


def test_bad_json_and_an_unknown_tenant(gateway: str, database_url: str) -> None:
    tenant = new_tenant(database_url)
    raw = httpx.put(url(gateway, tenant), content=b'{"overrides": [], "overrides": []}', headers=AUTH, timeout=10)
    assert raw.status_code == 400 and raw.json()["field"] == "overrides" and "duplicate" in raw.json()["detail"]
    assert httpx.put(url(gateway, tenant), content=b"{", headers=AUTH, timeout=10).status_code == 400
    for response in (httpx.get(url(gateway, "t_nobody_here"), headers=AUTH, timeout=10),
                     httpx.put(url(gateway, "t_nobody_here"), json=body(), headers=AUTH, timeout=10)):
        assert response.status_code == 404 and "t_nobody_here" in response.json()["detail"]


def test_the_cli_sets_and_shows_the_same_overrides(database_url: str, tmp_path: Any, monkeypatch: Any,
                                                   capsys: Any) -> None:
    from payrisk.cli import main

    tenant = new_tenant(database_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    stripe = tmp_path / "stripe.json"  # the override file format, tenant included
    stripe.write_text(json.dumps({"tenant": tenant, **body()["overrides"][0]}))
    adyen = tmp_path / "adyen.json"
    adyen.write_text(json.dumps([{"provider": "adyen", "version": 4, "rows": {"decline_code": {"zz": ROW}}}]))
    assert main(["classification", "overrides", "set", "--tenant", tenant, str(stripe), str(adyen)]) == 0
    assert "2 overrides stored (revision 1)" in capsys.readouterr().out
    assert main(["classification", "overrides", "show", "--tenant", tenant]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["revision"] == 1 and [o["provider"] for o in shown["overrides"]] == ["stripe", "adyen"]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"provider": "stripe", "version": 1, "rows": {"decline_code": {"x": {"reason": "y"}}}}))
    assert main(["classification", "overrides", "set", "--tenant", tenant, str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}.0: rows.decline_code.x.category: required field is missing" in err, err
    assert main(["classification", "overrides", "set", "--tenant", tenant, str(stripe), str(stripe)]) == 2
    assert "already overrides stripe" in capsys.readouterr().err
    assert main(["classification", "overrides", "show", "--tenant", "t_nobody_here"]) == 2
    assert "no tenant 't_nobody_here'" in capsys.readouterr().err
    assert main(["classification", "overrides", "show", "--tenant", tenant]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] == 1  # the failed sets stored nothing
