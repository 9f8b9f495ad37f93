"""Failure classification: provider codes → the payrisk taxonomy, driven by versioned JSON tables.

`classify(provider, decline, tables)` is pure; `default_tables()` loads the shipped tables once per process;
`load_tables(directory, overrides)` loads others (and tenant overrides) for tests, tools and start-up.
"""

from actors.domain.classification.classify import classify
from actors.domain.classification.errors import (
    ClassificationError,
    ClassificationTableError,
    UnknownProviderError,
)
from actors.domain.classification.loading import ClassificationTables, default_tables, load_tables
from actors.domain.classification.tables import NetworkTable, ProviderTable, Row, TenantOverride
from actors.domain.classification.taxonomy import (
    Category,
    Classification,
    CustomerAction,
    NetworkRule,
    is_retryable,
)

__all__ = [
    "Category",
    "Classification",
    "ClassificationError",
    "ClassificationTableError",
    "ClassificationTables",
    "CustomerAction",
    "NetworkRule",
    "NetworkTable",
    "ProviderTable",
    "Row",
    "TenantOverride",
    "UnknownProviderError",
    "classify",
    "default_tables",
    "is_retryable",
    "load_tables",
]
