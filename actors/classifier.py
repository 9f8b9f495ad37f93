"""The classifier pool on Ray: named actors `classifier-0..N-1` that classify batches with the pure function,
and complete what a failure's deliveries lack by reading the provider API (`enrich`).

The tables are loaded (and validated) in the driver and shipped to every actor, so a bad table or override
stops start-up there, and cluster nodes need no table files of their own. `classify_batch` is pure, so Ray
may run it twice (`max_task_retries=-1`); the only state, the unknown-code tally, is a metric and may then
count twice.
The durable record of an unknown code is the caller's event, made from `Classification.unknown`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import ray

from actors.domain.classification import Classification, ClassificationTables, classify, default_tables
from actors.domain.inbound import DeclineInfo
from actors.placement import NAMESPACE

BATCH_SIZE = 100
Item = tuple[str, str, dict[str, Any]]  # (tenant_id, provider, DeclineInfo as a dict)


class ClassifierActor:
    """One classifier process. Create through `ClassifierPool`, or directly in tests without Ray."""

    def __init__(self, tables: ClassificationTables | None = None, provider: dict[str, Any] | None = None) -> None:
        self._tables = tables or default_tables()
        self._unknown: Counter[str] = Counter()
        self._provider = dict(provider or {})
        self._readers: dict[str, Any] = {}
        self._keys: Any = None

    def enrich(self, tenant: str, provider: str, customer_id: str, fetch: dict[str, Any]) -> dict[str, Any]:
        """Read a failure's missing decline codes (and the customer's tenure) through the provider API, and
        classify them. `fetch` is a `DetailsFetch` as a dict; the answer goes back to the customer's home, which
        records it as an event. Never raises for a provider error: the answer carries it in `error`."""
        reader = self._reader_for(tenant)
        if reader is None:
            return {"failure_no": fetch["failure_no"], "decline": None, "found_in": [], "customer": False,
                    "error": "no provider API key is configured"}
        result: dict[str, Any] = reader.details(customer_id, fetch)
        if result.get("decline"):
            result["classification"] = self._classify(tenant, provider, result["decline"])
        return result

    def _reader_for(self, tenant: str) -> Any:
        """A reader with the tenant's own provider key (encrypted in tenant_secrets), else the global one."""
        if self._keys is None:
            from actors.provider_keys import ProviderKeys

            self._keys = ProviderKeys(self._provider)
        key = self._keys.for_tenant_sync(tenant)
        if key and key not in self._readers:
            from actors.executor import StripeReader

            self._readers[key] = StripeReader(key, self._provider.get("stripe_api_base"))
        return self._readers.get(key) if key else None

    def classify_batch(self, items: list[Item]) -> list[dict[str, Any]]:
        """Classify each (tenant, provider, decline) item into `Classification.model_dump(mode="json")`.

        Idempotent apart from the unknown-code tally. A malformed decline or an unknown provider fails the
        batch: the gateway only hands over validated events from providers it has tables for.
        """
        return [self._classify(tenant, provider, decline) for tenant, provider, decline in items]

    def _classify(self, tenant: str, provider: str, decline: dict[str, Any]) -> dict[str, Any]:
        info = DeclineInfo.model_validate(decline)
        result = classify(provider, info, self._tables.for_tenant(tenant))
        if result.unknown:
            self._unknown[f"{provider}:{result.unknown_code or 'none'}"] += 1
        return result.model_dump(mode="json")

    def unknown_counts(self) -> dict[str, int]:
        """Unknown codes seen by this actor since it started, keyed `provider:field=value`."""
        return dict(self._unknown)

    def table_versions(self) -> dict[str, int]:
        """The version of every provider table this actor holds (and `networks`)."""
        versions = {name: table.version for name, table in self._tables.providers.items()}
        return {**versions, "networks": self._tables.networks.version}


RemoteClassifier = ray.remote(ClassifierActor)


class ClassifierPool:
    """Creates or finds `{prefix}-0..size-1` in namespace "payrisk" and spreads batches round-robin.

    With `get_if_exists`, actors that already run keep the tables they were started with. Requires `ray.init`.
    """

    def __init__(
        self, size: int = 2, tables: ClassificationTables | None = None, *, prefix: str = "classifier",
        provider: dict[str, Any] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a classifier pool needs at least one actor")
        # threaded: an API read in `enrich` must not hold up classification batches
        options = {"namespace": NAMESPACE, "get_if_exists": True, "num_cpus": 0, "max_restarts": -1,
                   "max_concurrency": 8}
        self.names = [f"{prefix}-{index}" for index in range(size)]
        self.handles: list[Any] = [
            RemoteClassifier.options(name=name, max_task_retries=-1, **options).remote(tables, provider)
            for name in self.names
        ]
        self._next = itertools.cycle(self.handles)

    def submit(self, items: Sequence[Item], batch_size: int = BATCH_SIZE) -> list[Any]:
        """Send `items` in batches to the next actors; returns one ObjectRef per batch, in order."""
        batches = [list(items[start : start + batch_size]) for start in range(0, len(items), batch_size)]
        return [next(self._next).classify_batch.remote(batch) for batch in batches]

    def classify(self, items: Sequence[Item], batch_size: int = BATCH_SIZE) -> list[Classification]:
        """Classify `items` through the pool, blocking; results are in input order."""
        return _flatten(ray.get(self.submit(items, batch_size)))

    async def classify_async(self, items: Sequence[Item], batch_size: int = BATCH_SIZE) -> list[Classification]:
        """As `classify`, awaiting the actors instead of blocking the event loop."""
        return _flatten(await asyncio.gather(*self.submit(items, batch_size)))

    def unknown_counts(self) -> dict[str, int]:
        """Unknown codes counted by every actor of the pool, summed."""
        total: Counter[str] = Counter()
        for counts in ray.get([handle.unknown_counts.remote() for handle in self.handles]):
            total.update(counts)
        return dict(total)

    def kill(self) -> None:
        """Stop every actor of the pool for good (tests and shutdown)."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)


def _flatten(batches: Sequence[list[dict[str, Any]]]) -> list[Classification]:
    return [Classification.model_validate(result) for batch in batches for result in batch]


def inline_classifier(
    tables: ClassificationTables | None = None,
) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """The pure function shaped as `Context.classify` (provider, decline dict → classification dict)."""
    chosen = tables or default_tables()

    def run(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
        return classify(provider, DeclineInfo.model_validate(decline), chosen).model_dump(mode="json")

    return run
