"""The fault catalogue: each fault is injected into the running stack and returns how to heal it.

A fault is a name and a function `inject(stack, rng) -> heal` (heal may be a no-op: a killed actor is restarted
by Ray, a SIGKILLed server by its heal). The driver keeps traffic flowing while a fault is on, heals it after
`hold` seconds, lets the platform settle and checks every invariant.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import stripe

from actors.placement import NAMESPACE
from payrisk.chaos.stack import ChaosStack

Heal = Callable[[], None]


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    what: str
    inject: Callable[[ChaosStack, random.Random], Heal]
    hold: float = 3.0  # seconds the fault stays on while traffic flows
    #: heal after the traffic step, in the main thread (Ray's cluster API installs signal handlers)
    heal_after_step: bool = False


def _kill_actor(name_of: Callable[[ChaosStack, random.Random], str]) -> Callable[[ChaosStack, random.Random], Heal]:
    def inject(stack: ChaosStack, rng: random.Random) -> Heal:
        import ray

        handle = ray.get_actor(name_of(stack, rng), namespace=NAMESPACE)
        ray.kill(handle, no_restart=False)  # as a crash: Ray restarts it (max_restarts=-1)
        return _nothing

    return inject


def _named(name: str) -> Callable[[ChaosStack, random.Random], str]:
    return lambda stack, rng: name


def _shard(stack: ChaosStack, rng: random.Random) -> str:
    return f"customer-shard-{rng.randrange(stack.settings.ray.shards):02d}"


def _proxy(target: str, mode: str, latency_ms: float = 0.0) -> Callable[[ChaosStack, random.Random], Heal]:
    def inject(stack: ChaosStack, rng: random.Random) -> Heal:
        proxy = stack.proxies[target]
        proxy.set_mode(mode, latency_ms)
        return lambda: proxy.set_mode("pass")

    return inject


def _postgres_sigkill(stack: ChaosStack, rng: random.Random) -> Heal:
    stack.pg.sigkill()
    return lambda: stack.pg.start()


def _redis_sigkill(stack: ChaosStack, rng: random.Random) -> Heal:
    stack.redis.sigkill()
    return lambda: stack.redis.start()


def _gateway_sigkill(stack: ChaosStack, rng: random.Random) -> Heal:
    """SIGKILL the gateway process in the middle of the next burst (once it has acknowledged a few deliveries of
    it): group commits and hand-offs are cut mid-way. What it acknowledged must be stored; what it stored but never
    handed off, the restarted gateway's sweeper hands off."""
    import threading

    acked = stack.pump.acked_count
    wanted = acked + 5 + rng.randrange(20)

    def kill_mid_burst() -> None:
        deadline = time.monotonic() + 20
        while stack.pump.acked_count < wanted and time.monotonic() < deadline:
            time.sleep(0.005)
        stack.gateway.sigkill()

    killer = threading.Thread(target=kill_mid_burst, daemon=True)
    killer.start()

    def heal() -> None:
        killer.join()
        stack.gateway.start()

    return heal


def _kill_ray_node(stack: ChaosStack, rng: random.Random) -> Heal:
    """Kill the Ray worker node that hosts a shard (no graceful shutdown); its shards restart on the other worker
    node from PostgreSQL. A fresh worker node joins after the hold, as an autoscaler would add one."""
    import ray

    shard = ray.get_actor(_shard(stack, rng), namespace=NAMESPACE)
    node_id = ray.get(shard.node.remote(), timeout=30)
    victim = next((n for n in stack.worker_nodes if n.node_id == node_id), None)
    if victim is None:  # the shard is elsewhere (on the head after an earlier fault): take any worker node
        victim = stack.worker_nodes[0]
    stack.cluster.remove_node(victim, allow_graceful=False)
    stack.worker_nodes.remove(victim)
    stack.node_kills += 1
    return lambda: stack.worker_nodes.append(stack.add_worker_node())


def _flushall(stack: ChaosStack, rng: random.Random) -> Heal:
    import redis

    redis.Redis.from_url(stack.redis.url).flushall()
    return _nothing


def _provider(**faults: float) -> Callable[[ChaosStack, random.Random], Heal]:
    def inject(stack: ChaosStack, rng: random.Random) -> Heal:
        stack.sim.set_faults(**faults)
        return lambda: stack.sim.set_faults(**{k: 0.0 for k in faults})

    return inject


def _clock_jump(stack: ChaosStack, rng: random.Random) -> Heal:
    """Three days at once: every retry, email and deadline of those days comes due together."""
    stack.jump = timedelta(days=3)
    return _nothing


def _poison(stack: ChaosStack, rng: random.Random) -> Heal:
    """Signed deliveries no customer home could apply: NUL in an invoice id (stored, quarantined), NUL in the
    event id (refused 400), a body that is not an event (refused 400)."""
    customer = next(iter(stack.sim.state.customers), "cus_poison") if hasattr(stack.sim, "state") else "cus_poison"
    secret = stack.sim.settings.webhook_secret
    event_id = f"evt_poison_{uuid.uuid4().hex[:10]}"
    invoice = {"id": "in_\u0000poison", "object": "invoice", "customer": customer, "amount_due": 1000,
               "currency": "usd", "status": "open", "attempt_count": 1, "billing_reason": "subscription_cycle"}
    bodies = {
        "nul_invoice": orjson.dumps({"id": event_id, "object": "event", "type": "invoice.payment_failed",
                                     "created": int(time.time()), "data": {"object": invoice}}),
        "nul_event_id": orjson.dumps({"id": "evt_\u0000x", "object": "event", "type": "invoice.payment_failed",
                                      "created": int(time.time()), "data": {"object": {**invoice, "id": "in_x"}}}),
        "not_an_event": b"[1, 2, 3]",
    }
    for kind, body in bodies.items():
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=int(time.time()))
        response = httpx.post(stack.gateway.url + "/webhooks/stripe", content=body, timeout=30,
                              headers={"stripe-signature": header, "content-type": "application/json"})
        stack.poison.append({"kind": kind, "status": response.status_code,
                             "event_id": event_id if kind == "nul_invoice" else None})
    return _nothing


CATALOGUE: tuple[Fault, ...] = (
    Fault("kill_shard", "a customer shard actor killed (Ray restarts it)", _kill_actor(_shard), 1.0),
    Fault("kill_scheduler", "the scheduler actor killed", _kill_actor(_named("scheduler")), 1.0),
    Fault("kill_outbox", "the outbox actor killed", _kill_actor(_named("outbox")), 1.0),
    Fault("kill_monitor", "the monitor actor killed", _kill_actor(_named("monitor")), 1.0),
    Fault("kill_notifier", "a notifier actor killed", _kill_actor(_named("notifier-0")), 1.0),
    Fault("kill_classifier", "a classifier actor killed", _kill_actor(_named("classifier-0")), 1.0),
    Fault("postgres_sigkill", "PostgreSQL SIGKILLed, restarted after the hold (crash recovery)", _postgres_sigkill),
    Fault("redis_sigkill", "Redis SIGKILLed (all keys lost), restarted after the hold", _redis_sigkill),
    Fault("redis_flushall", "Redis FLUSHALL", _flushall, 1.0),
    Fault("kill_ray_node", "the Ray worker node hosting a shard killed; a new node joins after the hold",
          _kill_ray_node, 0.0, heal_after_step=True),
    Fault("gateway_sigkill", "the gateway process SIGKILLed mid-burst, restarted after the hold", _gateway_sigkill,
          6.0),
    Fault("postgres_latency", "50 ms on every PostgreSQL packet", _proxy("postgres", "latency", 50.0)),
    Fault("postgres_reset", "every PostgreSQL connection reset", _proxy("postgres", "reset")),
    Fault("postgres_blackhole", "PostgreSQL packets swallowed (a black hole)", _proxy("postgres", "blackhole")),
    Fault("redis_blackhole", "Redis packets swallowed", _proxy("redis", "blackhole")),
    Fault("redis_reset", "every Redis connection reset", _proxy("redis", "reset")),
    Fault("provider_reset", "connections to the provider API reset", _proxy("provider", "reset")),
    Fault("provider_blackhole", "the provider API a black hole (timeouts)", _proxy("provider", "blackhole"), 8.0),
    Fault("provider_latency", "1 s on every provider API packet", _proxy("provider", "latency", 1000.0)),
    Fault("smtp_blackhole", "the SMTP server a black hole", _proxy("smtp", "blackhole")),
    Fault("provider_500_after_charge", "the provider charges, then answers 500",
          _provider(api_error_after_charge_rate=0.7)),
    Fault("provider_429_500", "the provider answers 429 and 500 before charging",
          _provider(api_rate_limit_rate=0.3, api_error_rate=0.3)),
    Fault("clock_jump", "the clock jumps three days", _clock_jump, 0.0),
    Fault("poison_delivery", "signed deliveries nothing could apply (NUL, not an event)", _poison, 0.0),
)
BY_NAME: dict[str, Fault] = {f.name: f for f in CATALOGUE}


def pick(names: list[str] | None, rng: random.Random, count: int) -> list[Fault]:
    """The faults of a run: every named one in order, or (none named) the catalogue shuffled with the seed,
    each once before any repeats."""
    if names:
        return [BY_NAME[n] for n in names]
    order: list[Fault] = []
    while len(order) < count:
        batch = list(CATALOGUE)
        rng.shuffle(batch)
        order += batch
    return order[:count]


def describe() -> list[dict[str, Any]]:
    return [{"name": f.name, "what": f.what, "hold_seconds": f.hold} for f in CATALOGUE]
