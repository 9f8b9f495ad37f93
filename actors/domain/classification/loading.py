"""Loading the tables once at start: every provider file, the network file, and tenant overrides.

Any problem stops loading with a ClassificationTableError naming the file, the row and the problem.
Duplicate keys are caught while parsing (plain `json.loads` would silently keep the last one).

Overrides stored per tenant (PostgreSQL, the HTTP API) go through the same checks: `parse_json` for the body,
`check_tenant_overrides` for the documents, `tenant_view` for the tables the tenant then sees.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
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
        _apply(override, str(path), providers, tenant_tables.setdefault(override.tenant, {}))
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
    override: TenantOverride, source: str, providers: dict[str, ProviderTable], into: dict[str, ProviderTable]
) -> None:
    base = providers.get(override.provider)
    if base is None:
        known = ", ".join(sorted(providers))
        raise ClassificationTableError(source, "provider", f"unknown provider {override.provider!r} ({known})")
    if override.provider in into:
        problem = f"tenant {override.tenant!r} already overrides {override.provider} in another file"
        raise ClassificationTableError(source, "tenant", problem)
    try:
        into[override.provider] = override.apply(base)
    except ValidationError as exc:
        raise from_validation(exc, source) from exc


def check_tenant_overrides(
    tenant: str, documents: object, tables: ClassificationTables, source: str = "overrides"
) -> list[TenantOverride]:
    """Validate a tenant's stored or submitted override documents exactly as override files are validated.

    `documents` is a list of override objects (`provider`, `version`, `rows`, optional `description`; `tenant`
    is filled in and, when given, must be `tenant`). Each is checked as a model and applied to `tables`;
    the first problem raises ClassificationTableError(`{source}.{index}`, field, problem).
    """
    if not isinstance(documents, list):
        raise ClassificationTableError(source, "-", "expected a list of override objects")
    checked: list[TenantOverride] = []
    for index, document in enumerate(documents):
        where = f"{source}.{index}"
        if not isinstance(document, dict):
            raise ClassificationTableError(where, "-", "expected an override object")
        if document.get("tenant", tenant) != tenant:
            problem = f"the override is for tenant {document['tenant']!r}, stored for {tenant!r}"
            raise ClassificationTableError(where, "tenant", problem)
        try:
            checked.append(TenantOverride.model_validate({**document, "tenant": tenant}))
        except ValidationError as exc:
            raise from_validation(exc, where) from exc
    _tenant_tables(tables, checked, [f"{source}.{index}" for index in range(len(checked))])
    return checked


def tenant_view(tables: ClassificationTables, tenant: str, overrides: Sequence[TenantOverride]) -> ClassificationTables:
    """The tables as `tenant` sees them with `overrides` (replacing any the tables carry for that tenant)."""
    own = _tenant_tables(tables, overrides, [f"override.{index}" for index in range(len(overrides))])
    return ClassificationTables(providers=tables.providers, networks=tables.networks, tenant_tables={tenant: own},
                                tenant=tenant)


def _tenant_tables(
    tables: ClassificationTables, overrides: Sequence[TenantOverride], sources: Sequence[str]
) -> dict[str, ProviderTable]:
    own: dict[str, ProviderTable] = {}
    for override, source in zip(overrides, sources, strict=True):
        _apply(override, source, dict(tables.providers), own)
    return own


def parse_json(text: str | bytes, source: str) -> Any:
    """JSON as table files are read: invalid JSON and duplicate keys raise ClassificationTableError."""
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "-"
        problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ClassificationTableError(source, where, f"invalid JSON: {problem}") from exc
    return _unique(raw, source, "")


def read_model(path: Path, model: type[M]) -> M:
    """Parse `path` into `model`; unreadable files, bad JSON, duplicate keys and bad rows all raise."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClassificationTableError(name, "-", f"cannot read file ({exc.strerror or exc})") from exc
    raw = parse_json(text, name)
    try:
        return model.model_validate(raw)
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
