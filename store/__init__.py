"""PostgreSQL event store and Redis idempotency helpers (psycopg 3, redis-py)."""

from payrisk.store.db import Conn, Database
from payrisk.store.errors import ConcurrencyConflict, IntegrityError, StoreError, StoreUnavailable

__all__ = ["Conn", "ConcurrencyConflict", "Database", "IntegrityError", "StoreError", "StoreUnavailable"]
