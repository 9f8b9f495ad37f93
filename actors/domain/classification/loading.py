"""Loading the tables once at start: every provider file, the network file, and tenant overrides.

Any problem stops loading with a ClassificationTableError naming the file, the row and the problem.
Duplicate keys are caught while parsing (plain `json.loads` would silently keep the last one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from actors.domain.classification.errors import (
    ClassificationTableError,
    UnknownProviderError,
    from_validation,
)
from actors.domain.classification.tables import NetworkTable, ProviderTable, TenantOverride

TABLES_DIR = Path(__file__).resolve().parent / "tables"
NETWORKS_FILE = "networks.json"
M = TypeVar("M", bound=BaseModel)


class ClassificationTables(BaseModel):
    """Every provider table and the network table; a tenant's view applies that tenant's overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: dict[str, ProviderTable]
    networks: NetworkTable
    tenant_tables: dict[str, dict[str, ProviderTable]] = {}  # tenant → provider → table with overrides
    tenant: str | None = None
    _views: dict[str, ClassificationTables] = PrivateAttr(default_factory=dict)

    def table(self, provider: str) -> ProviderTable:
        """The table for `provider` as this view's tenant sees it."""
        own = self.tenant_tables.get(self.tenant or "", {}).get(provider)
        if own is not None:
            return own
        try:
            return self.providers[provider]
        except KeyError:
            known = ", ".join(sorted(self.providers))
            raise UnknownProviderError(f"no classification table for provider {provider!r} (known: {known})") from None

    def for_tenant(self, tenant_id: str) -> ClassificationTables:
        """The view of `tenant_id` (the shared tables when the tenant has no overrides)."""
        if tenant_id == self.tenant:
            return self
        view = self._views.get(tenant_id)
        if view is None:
            view = self.model_copy(update={"tenant": tenant_id})
            view._views = self._views  # every view shares one cache
            self._views[tenant_id] = view
        return view


def load_tables(directory: Path | None = None, overrides: Path | None = None) -> ClassificationTables:
    """Read `directory` (default: the shipped tables) and `overrides` (one file or a folder of them)."""
    directory = directory or TABLES_DIR
    networks = read_model(directory / NETWORKS_FILE, NetworkTable)
    providers = {table.id: table for table in _provider_tables(directory)}
    tenant_tables: dict[str, dict[str, ProviderTable]] = {}
    for path in _override_files(overrides):
        override = read_model(path, TenantOverride)
        _apply(override, path, providers, tenant_tables.setdefault(override.tenant, {}))
    return ClassificationTables(providers=providers, networks=networks, tenant_tables=tenant_tables)


@functools.cache
def default_tables() -> ClassificationTables:
    """The shipped tables, parsed once per process."""
    return load_tables()


def _provider_tables(directory: Path) -> Iterable[ProviderTable]:
    paths = sorted(p for p in directory.glob("*.json") if p.name != NETWORKS_FILE)
    if not paths:
        raise ClassificationTableError(str(directory), "-", "no provider tables (*.json) found")
    for path in paths:
        table = read_model(path, ProviderTable)
        if table.id != path.stem:
            raise ClassificationTableError(str(path), "id", f"{table.id!r} does not match the file name")
        yield table


def _override_files(overrides: Path | None) -> list[Path]:
    if overrides is None:
        return []
    return sorted(overrides.glob("*.json")) if overrides.is_dir() else [overrides]


def _apply(
    override: TenantOverride, path: Path, providers: dict[str, ProviderTable], into: dict[str, ProviderTable]
) -> None:
    base = providers.get(override.provider)
    if base is None:
        known = ", ".join(sorted(providers))
        raise ClassificationTableError(str(path), "provider", f"unknown provider {override.provider!r} ({known})")
    if override.provider in into:
        problem = f"tenant {override.tenant!r} already overrides {override.provider} in another file"
        raise ClassificationTableError(str(path), "tenant", problem)
    try:
        into[override.provider] = override.apply(base)
    except ValidationError as exc:
        raise from_validation(exc, str(path)) from exc


def read_model(path: Path, model: type[M]) -> M:
    """Parse `path` into `model`; unreadable files, bad JSON, duplicate keys and bad rows all raise."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClassificationTableError(name, "-", f"cannot read file ({exc.strerror or exc})") from exc
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ClassificationTableError(name, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from exc
    try:
        return model.model_validate(_unique(raw, name, ""))
    except ValidationError as exc:
        raise from_validation(exc, name) from exc


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed, before duplicate keys are ruled out."""


def _unique(node: Any, file: str, where: str) -> Any:
    if isinstance(node, _Pairs):
        out: dict[str, Any] = {}
        for key, value in node:
            at = f"{where}.{key}" if where else key
            if key in out:
                raise ClassificationTableError(file, at, "duplicate row (the key appears twice)")
            out[key] = _unique(value, file, at)
        return out
    if isinstance(node, list):
        return [_unique(value, file, f"{where}.{index}") for index, value in enumerate(node)]
    return node
