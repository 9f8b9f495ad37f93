"""The invariants checked after every fault, once the platform has settled. Each check returns the violations it
found (readable strings); an empty list is a pass. They read PostgreSQL directly (never through a fault proxy),
the simulator's ledger (the provider's truth) and the background actors' health."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from actors.domain.analytics import CASE_STATES
from actors.domain.case import empty_state, evolve
from actors.placement import NAMESPACE
from payrisk.chaos.stack import ChaosStack
from payrisk.demo.network import AttemptRow
from payrisk.demo.network import violations as network_violations
from simulator.catalog import is_hard
from store.integrity import Reader
from store.outbox import DEFAULT_LEASE

Check = Callable[[ChaosStack, Reader], list[str]]
#: a loop that has not completed a pass for this long (wall seconds) is stalled (the monitor polls every 30 s)
STALL_SECONDS = {"scheduler": 30.0, "outbox": 30.0, "monitor": 90.0}


def deliveries(stack: ChaosStack, db: Reader) -> list[str]:
    """Every acknowledged delivery is stored and applied (or ignored), or quarantined with a reason."""
    stored = db.delivery_statuses()
    found = [f"acknowledged but not stored: {e}" for e in sorted(stack.pump.acked - set(stored))][:20]
    found += [f"{e}: still {s} after settling" for e, (s, _) in stored.items() if s in ("received", "dispatched")]
    found += [f"{e}: quarantined without a reason" for e, (s, r) in stored.items() if s == "quarantined" and not r]
    for poison in stack.poison:
        if poison["kind"] == "nul_invoice" and poison["status"] == 200 and stored.get(poison["event_id"], ("",))[0] \
                != "quarantined":
            found.append(f"poisonous delivery {poison['event_id']!r} not quarantined")
        if poison["kind"] != "nul_invoice" and poison["status"] != 400:
            found.append(f"poisonous delivery ({poison['kind']}) answered {poison['status']}, not 400")
    return found


def applied_once(stack: ChaosStack, db: Reader) -> list[str]:
    """No delivery's event was recorded twice (a re-dispatch or an actor retry applied it again)."""
    return [f"delivery {d}: {t} recorded {n} times" for d, t, n in db.events_recorded_twice()]


def charges(stack: ChaosStack, db: Reader) -> list[str]:
    """At most one charge per idempotency key in the provider's ledger, and never a charge without our intent."""
    ours = [e for e in stack.sim.ledger_entries() if e.source == "api" and e.idempotency_key]
    per_key = Counter(e.idempotency_key for e in ours if e.outcome == "succeeded")
    found = [f"{key}: {n} successful charges" for key, n in per_key.items() if n > 1]
    found += [f"double charge on {inv}: {n}" for inv, n in stack.sim.double_charges().items()]
    keys = db.attempt_keys()
    found += [f"charge without a committed intent: {e.idempotency_key}" for e in ours
              if e.idempotency_key and e.idempotency_key.startswith("payrisk:") and e.idempotency_key not in keys]
    return found


def network_rules(stack: ChaosStack, db: Reader) -> list[str]:
    """No card-network retry limit broken; no retry after a hard decline on the same card."""
    broken = network_violations([AttemptRow(card=card, brand=brand, at=at, declined=status == "failed")
                                 for card, brand, at, status in db.attempts_by_card()])
    found = [f"{rule}: {n} card(s)" for rule, n in broken.items() if n]
    from payrisk.demo.ledger import score

    after = score("payrisk", stack.sim.ledger_entries(), is_hard).retries_after_do_not_retry
    return found + ([f"{after} retries after a do-not-retry answer"] if after else [])


def declared_states(stack: ChaosStack, db: Reader) -> list[str]:
    """Every case is in a declared state."""
    allowed = CASE_STATES | {"healthy"}
    return [f"{s}/{inv}: undeclared state {st!r}" for s, inv, st in db.case_states() if st not in allowed]


def replay(stack: ChaosStack, db: Reader) -> list[str]:
    """Folding each customer's event log gives its checkpoint (I5)."""
    found = []
    for tenant, stream, version, state in db.customer_checkpoints():
        events = db.stream_events(tenant, stream)
        folded = empty_state(tenant, stream)
        for event_type, payload, _ in events:
            folded = evolve(folded, event_type, payload)
        if len(events) != version or folded != state:
            found.append(f"{stream}: replay of {len(events)} events differs from checkpoint v{version}")
    return found


def outbox(stack: ChaosStack, db: Reader) -> list[str]:
    """Nothing due is left unsent (dead letters are reported by alerts and counted, not lost). A row still leased
    by a worker that died is not lost: another claims it when the lease ends; a row written in the last seconds
    (an API read's answer decided after the platform looked quiet) is in flight, not left behind."""
    now = stack.sim.now()
    rows = db.outbox_left_behind(now, DEFAULT_LEASE)
    return [f"outbox {i} ({t}) due and unsent: {e or 'no error'}"[:200] for i, t, e in rows][:20]


def loops(stack: ChaosStack, db: Reader) -> list[str]:
    """Scheduler, outbox and monitor loops are running and completed a pass recently."""
    import ray

    found = []
    for name, limit in STALL_SECONDS.items():
        try:
            health = ray.get(ray.get_actor(name, namespace=NAMESPACE).health.remote(), timeout=30)
        except Exception as exc:  # noqa: BLE001 - an actor that cannot answer is a stalled loop
            found.append(f"{name}: no answer ({type(exc).__name__})")
            continue
        since = health["last_tick"] or health.get("loop_started") or 0  # a restarted loop: since it started
        age = time.time() - since
        if not health["running"] or age > limit:
            found.append(f"{name}: running={health['running']}, last pass {age:.0f}s ago ({health['last_error']})")
    return found


CHECKS: dict[str, Check] = {"deliveries": deliveries, "applied_once": applied_once, "charges": charges,
                            "network_rules": network_rules, "declared_states": declared_states, "replay": replay,
                            "outbox": outbox, "loops": loops}


def run_checks(stack: ChaosStack) -> dict[str, list[str]]:
    with Reader(stack.database_url) as db:
        return {name: check(stack, db) for name, check in CHECKS.items()}
