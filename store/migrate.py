"""Apply the numbered SQL migrations in `migrations/` with yoyo (forward-only)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

#: the `migrations` package's directory (a checkout, or the installed package data)
MIGRATIONS_DIR = Path(str(files("migrations")))


def yoyo_url(database_url: str) -> str:
    """yoyo needs the psycopg 3 driver named in the scheme."""
    parts = urlsplit(database_url)
    return database_url.replace(f"{parts.scheme}://", "postgresql+psycopg://", 1)


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the ids applied (empty when up to date)."""
    from yoyo import get_backend, read_migrations
    from yoyo.migrations import MigrationList

    backend = get_backend(yoyo_url(database_url))
    # the package's own __init__.py is not a migration
    migrations = MigrationList([m for m in read_migrations(str(directory)) if not m.id.startswith("_")])
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    ids = [m.id for m in pending]
    backend.connection.close()
    return ids
