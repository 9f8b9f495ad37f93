"""Apply the numbered SQL migrations in `migrations/` with yoyo (forward-only)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def yoyo_url(database_url: str) -> str:
    """yoyo needs the psycopg 3 driver named in the scheme."""
    parts = urlsplit(database_url)
    return database_url.replace(f"{parts.scheme}://", "postgresql+psycopg://", 1)


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the ids applied (empty when up to date)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(directory))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    ids = [m.id for m in pending]
    backend.connection.close()
    return ids
