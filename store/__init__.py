"""PostgreSQL event store and Redis idempotency helpers (psycopg 3, redis-py)."""

from store.db import Conn, Database
from store.errors import ConcurrencyConflict, IntegrityError, StoreError, StoreUnavailable

__all__ = ["Conn", "ConcurrencyConflict", "Database", "IntegrityError", "StoreError", "StoreUnavailable"]
