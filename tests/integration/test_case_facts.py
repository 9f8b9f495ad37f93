"""The `case_facts` read model follows every checkpoint write in the same transaction, and equals what unpacking
the checkpoints' JSON gives (the query the analytics ran before the read model, kept here as the oracle)."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ORACLE = """
SELECT cp.stream_id, c.key, c.value->>'state', coalesce((c.value->>'amount_due')::bigint, 0),
       coalesce(c.value->>'currency', 'unknown'), coalesce((c.value->>'attempts_made')::int, 0),
       coalesce(c.value->'classification'->>'category', 'unclassified'),
       coalesce(c.value->'strategy'->>'segment', 'none'),
       coalesce((c.value->>'recovered_amount')::bigint, 0), (c.value->>'first_failed_at')::timestamptz,
       (c.value->>'recovered_at')::timestamptz
FROM checkpoints cp CROSS JOIN LATERAL jsonb_each(cp.state->'cases') c
WHERE cp.tenant_id = %s AND c.value->>'first_failed_at' IS NOT NULL ORDER BY 1, 2
"""
FACTS = """
SELECT customer_id, invoice_id, state, amount_due, currency, attempts_made, category, segment, recovered_amount,
       first_failed_at, recovered_at
FROM case_facts WHERE tenant_id = %s ORDER BY 1, 2
"""
STATES = ["classifying", "retry_scheduled", "awaiting_customer", "recovered", "exhausted", "healthy"]


def a_case(rng: random.Random, invoice: str) -> dict[str, Any]:
    state = rng.choice(STATES)
    case: dict[str, Any] = {"invoice_id": invoice, "state": state, "amount_due": rng.randrange(100, 90000),
                            "currency": rng.choice(["usd", "eur"]), "attempts_made": rng.randrange(0, 4),
                            "classification": rng.choice([None, {"category": "SOFT_DECLINE", "reason": "x"}]),
                            "strategy": rng.choice([None, {"id": "standard", "version": 1, "segment": "default"}]),
                            "first_failed_at": None if state == "healthy" else f"2026-03-{rng.randrange(1, 28):02d}T"
                                                                                "09:00:00+00:00"}
    if state == "recovered":
        case.update(recovered_amount=case["amount_due"], recovered_at="2026-03-28T10:00:00+00:00",
                    recovered_via=rng.choice(["retry", "provider"]))
    return case


def test_the_read_model_equals_the_checkpoints_through_inserts_updates_and_deletes(database_url: str) -> None:
    rng = random.Random(7)
    tenant = f"facts{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
        customers = [f"cus_{i}" for i in range(40)]
        for round_no in range(4):
            for customer in rng.sample(customers, 25):
                cases = {f"in_{customer}_{n}": a_case(rng, f"in_{customer}_{n}") for n in range(rng.randrange(0, 4))}
                conn.execute(
                    "INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version,"
                    " state = excluded.state", (tenant, customer, round_no + 1, Jsonb({"cases": cases})))
            if round_no == 2:
                conn.execute("DELETE FROM checkpoints WHERE tenant_id = %s AND stream_id = ANY(%s)",
                             (tenant, customers[:5]))
            assert conn.execute(FACTS, (tenant,)).fetchall() == conn.execute(ORACLE, (tenant,)).fetchall()
        assert conn.execute("SELECT count(*) FROM case_facts WHERE tenant_id = %s", (tenant,)).fetchone()[0] > 20


def test_a_rolled_back_decision_leaves_no_fact(database_url: str) -> None:
    tenant = f"facts{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
        conn.commit()
        state = {"cases": {"in_1": {"state": "classifying", "first_failed_at": "2026-03-01T00:00:00+00:00"}}}
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, 'c', 1, %s)",
                     (tenant, Jsonb(state)))
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM case_facts WHERE tenant_id = %s", (tenant,)).fetchone()[0] == 0


def test_a_case_has_its_provider_from_its_stream(database_url: str) -> None:
    tenant = f"facts{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
        state = {"cases": {"in_1": {"state": "classifying", "first_failed_at": "2026-03-01T00:00:00+00:00"}}}
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, 'c', 1, %s)",
                     (tenant, Jsonb(state)))
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, 'adyen:c', 1, %s)",
                     (tenant, Jsonb(state)))
        providers = dict(conn.execute("SELECT customer_id, provider FROM case_facts WHERE tenant_id = %s",
                                      (tenant,)).fetchall())
    assert providers == {"c": "stripe", "adyen:c": "adyen"}
