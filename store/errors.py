"""The store's error hierarchy; psycopg errors are translated here and nowhere else."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg


class StoreError(Exception):
    """Base of every store error."""


class ConcurrencyConflict(StoreError):
    """An append lost the race: the stream already has the expected version + 1."""


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached or stopped answering; retryable."""


class IntegrityError(StoreError):
    """A constraint rejected the write (not a concurrency race); permanent for this input."""


def translate(exc: psycopg.Error) -> StoreError:
    """Map a psycopg error onto the store hierarchy (the single place that knows psycopg's classes)."""
    if isinstance(exc, pg.UniqueViolation) and _constraint(exc) == "events_pkey":
        return ConcurrencyConflict(f"stream already advanced ({_constraint(exc)})")
    if isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected | pg.LockNotAvailable):
        return ConcurrencyConflict(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError | pg.AdminShutdown | pg.CannotConnectNow):
        return StoreUnavailable(str(exc).strip() or type(exc).__name__)
    if isinstance(exc, psycopg.IntegrityError):
        return IntegrityError(str(exc).strip())
    return StoreError(str(exc).strip() or type(exc).__name__)


def _constraint(exc: psycopg.Error) -> str | None:
    diag = getattr(exc, "diag", None)
    return getattr(diag, "constraint_name", None)
