"""A value no JSON library on the hot path can write (an integer beyond 64 bits a client once sent, kept by
PostgreSQL's jsonb) never turns an answer into a 500 — found by the OpenAPI fuzz on `/api/admin/audit`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from gateway.app import create_app
from gateway.jsonbody import dumps
from settings import load_settings
from tests.support.principals import make_key
from tests.support.servers import ServerThread

HUGE = 2**70 + 1


def test_the_body_writer_falls_back_for_huge_integers() -> None:
    assert dumps({"n": HUGE}) == f'{{"n": {HUGE}}}'.encode()
    assert dumps({"n": 1}) == b'{"n":1}'  # the fast path is unchanged


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str) -> Iterator[str]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url)
    with ServerThread(create_app(settings)) as server:
        yield server.url


def test_an_audit_entry_holding_a_huge_integer_is_answered(gateway: str, database_url: str) -> None:
    tenant = f"big{uuid.uuid4().hex[:6]}"
    key = make_key(database_url, tenant, ("admin",))
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO audit_events (tenant_id, principal, via, action, after) VALUES (%s, 'k', 'api',"
                     " 'profile.updated', %s)", (tenant, Jsonb({"mrr": HUGE})))
    answer = httpx.get(f"{gateway}/api/admin/audit", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert str(HUGE) in answer.text
