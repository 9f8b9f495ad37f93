"""Build the decision context a shard passes to the pure core: clock value, classifier, planner, tenant mode, and
the branding of the tenant's emails.

Each tenant classifies with the shipped tables plus its own overrides, which are stored in PostgreSQL
(`classification_overrides`, edited through `PUT /api/tenants/{tenant}/classification-overrides`).
`tenant_classifier(conn, tenant)` re-reads the tenant's revision at most every few seconds and rebuilds its
tables only when the revision moved; `classifier_for(tenant)` (what the context factory uses) never does I/O:
it returns what the last refresh built, or the shipped tables before any refresh.

A tenant's branding (`tenants.settings.branding`, set with `payrisk tenants update` or the admin API; read by the
shard with the tenant's row every few seconds) names its emails; each field it leaves out is the installation's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import structlog

from actors.domain.decisions import Context, Planner
from actors.domain.default_planner import DefaultPlanner


class ContextFactory(Protocol):
    async def __call__(self, tenant_id: str, now: datetime, history: Mapping[str, Sequence[datetime]],
                       paused: frozenset[str], retry_mode: str, branding: Mapping[str, Any] | None = None
                       ) -> Context: ...


Classify = Callable[[str, dict[str, Any]], dict[str, Any]]

#: How long a shard trusts the overrides it holds before it asks PostgreSQL for the tenant's revision again.
OVERRIDES_TTL_SECONDS = 5.0

log = structlog.get_logger("payrisk.planning")


#: the installation's branding when its configuration names none
DEFAULT_BRANDING: dict[str, Any] = {"name": "payrisk", "support_email": "support@payrisk.local", "logo_url": None}


def make_context_factory(config: dict[str, Any]) -> ContextFactory:
    planner = make_planner(config.get("planner", "strategies"))
    installation = dict(config.get("branding") or DEFAULT_BRANDING)
    timing = {"resume_delay": timedelta(seconds=float(config.get("card_update_retry_seconds", 60.0))),
              "join_window": timedelta(seconds=float(config.get("join_window_seconds", 600.0))),
              "classify_wait": timedelta(seconds=float(config.get("classify_wait_seconds", 120.0)))}

    async def build(tenant_id: str, now: datetime, history: Mapping[str, Sequence[datetime]],
                    paused: frozenset[str], retry_mode: str, branding: Mapping[str, Any] | None = None) -> Context:
        """`retry_mode` is the tenant's (tenants.retry_mode): `own` charges, `observe` records shadow decisions;
        `branding` the tenant's own (`tenants.settings.branding`), over the installation's."""
        return Context(now=now, classify=classifier_for(tenant_id), planner=planner, retry_mode=retry_mode,
                       card_history=history, branding=tenant_branding(installation, branding, tenant_id),
                       paused_providers=paused, **timing)

    return build


def tenant_branding(installation: Mapping[str, Any], own: Mapping[str, Any] | None,
                    tenant_id: str = "") -> dict[str, Any]:
    """The tenant's branding field by field over the installation's. A result the emails could not carry (an
    address the notifier refuses) is logged once and replaced by the installation's: the mail still goes out."""
    given = tuple(sorted((str(k), v) for k, v in (own or {}).items() if isinstance(v, str)))
    if not given:
        return dict(installation)
    return dict(_merged(tuple(sorted(installation.items())), given, tenant_id))


@lru_cache(maxsize=1024)
def _merged(installation: tuple[tuple[str, Any], ...], own: tuple[tuple[str, str], ...],
            tenant_id: str) -> tuple[tuple[str, Any], ...]:
    from pydantic import ValidationError

    from actors.notifier.messages import Branding

    merged = {**dict(installation), **dict(own)}
    try:
        Branding.model_validate(merged)
    except ValidationError as exc:
        log.error("branding.invalid", tenant=tenant_id, fields=sorted({str(e["loc"][0]) for e in exc.errors()}))
        return installation
    return tuple(merged.items())


def make_planner(name: str) -> Planner:
    if name == "default":
        return DefaultPlanner()
    from actors.domain.strategy_planner import StrategyPlanner

    return StrategyPlanner()


@dataclass(slots=True)
class _Entry:
    revision: int
    classify: Classify
    checked_at: float


class TenantClassifiers:
    """Each tenant's classification function, rebuilt when the tenant's stored overrides change.

    `refresh(conn, tenant)` asks PostgreSQL at most once per `ttl` seconds per tenant (one indexed query that
    returns the documents only when the revision moved). Overrides that no longer validate (the shipped tables
    changed under them) are logged once per revision and the tenant classifies with the shipped tables.
    """

    def __init__(self, ttl: float = OVERRIDES_TTL_SECONDS, max_tenants: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_tenants
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, tenant_id: str) -> Classify:
        """What the last refresh built for the tenant; the shipped tables when it was never refreshed. No I/O."""
        entry = self._entries.get(tenant_id)
        return entry.classify if entry is not None else _shipped(tenant_id)

    async def refresh(self, conn: Any, tenant_id: str) -> Classify:
        """The tenant's classifier, re-read from the database when the TTL has passed."""
        from store import classification_overrides

        now = self._clock()
        entry = self._entries.get(tenant_id)
        if entry is not None and entry.checked_at + self._ttl > now:
            return entry.classify
        known = entry.revision if entry is not None else 0
        revision, documents = await classification_overrides.changed(conn, tenant_id, known)
        if entry is not None and documents is None:
            entry.checked_at = now
            self._entries.move_to_end(tenant_id)
            return entry.classify
        classify = _shipped(tenant_id) if not documents else _with_overrides(tenant_id, revision, documents)
        self._entries[tenant_id] = _Entry(revision, classify, now)
        self._entries.move_to_end(tenant_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return classify

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop one tenant's entry (or all): the next refresh reads the database."""
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)


_CLASSIFIERS = TenantClassifiers()


def classifier_for(tenant_id: str) -> Classify:
    """The pure classification function bound to the tenant's tables (with its overrides, as last refreshed)."""
    return _CLASSIFIERS.get(tenant_id)


async def tenant_classifier(conn: Any, tenant_id: str) -> Classify:
    """Refresh the process's view of the tenant's overrides (at most every few seconds) and return its classifier.

    A shard calls this with its decision transaction's connection before building the context:
    `classifier_for(tenant_id)` (and so `make_context_factory`'s contexts) then use what it loaded.
    """
    return await _CLASSIFIERS.refresh(conn, tenant_id)


@lru_cache(maxsize=256)
def _shipped(tenant_id: str) -> Classify:
    from actors.domain.classification import default_tables

    return _bind(default_tables().for_tenant(tenant_id))


def _with_overrides(tenant_id: str, revision: int, documents: list[dict[str, Any]]) -> Classify:
    from actors.domain.classification import ClassificationTableError, default_tables
    from actors.domain.classification.loading import check_tenant_overrides, tenant_view

    tables = default_tables()
    try:
        overrides = check_tenant_overrides(tenant_id, documents, tables, source=f"revision {revision}")
    except ClassificationTableError as exc:
        log.error("classification.overrides_invalid", tenant=tenant_id, revision=revision, error=str(exc))
        return _shipped(tenant_id)
    return _bind(tenant_view(tables, tenant_id, overrides))


def _bind(tables: Any) -> Classify:
    from actors.domain.classification import classify
    from actors.domain.inbound import DeclineInfo

    fields = set(DeclineInfo.model_fields)

    def run(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
        info = DeclineInfo(**{k: v for k, v in decline.items() if k in fields})
        return classify(provider, info, tables).model_dump(mode="json")  # type: ignore[no-any-return]

    return run
