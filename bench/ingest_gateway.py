"""The gateway alone, for the durable-ingest measurement: `payrisk up`'s HTTP server and app (same middleware,
signature check, parsing, group commit with its Redis claim, 2xx after commit), on the local PostgreSQL and Redis,
without Ray — so no hand-off and no decisions share the cores. Deliveries stay `received` (with Ray they would be
handed to the customers' shards). Compared with bare Starlette in the same sitting, this is the ingest ratio.

    python -m bench.ingest_gateway PORT WORKERS      # DATABASE_URL, REDIS_URL, STRIPE_WEBHOOK_SECRET from the env
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile


def main(argv: list[str]) -> None:
    import uvicorn

    from payrisk.httpserver import uvicorn_options
    from settings import load_settings
    from settings.logging import configure_logging
    from store.migrate import apply_migrations

    port, workers = int(argv[0]), int(argv[1])
    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.format)
    assert settings.database.url is not None, "DATABASE_URL is required"
    apply_migrations(settings.database.url)  # as `payrisk up` does
    metrics = tempfile.mkdtemp(prefix="payrisk-bench-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics  # several workers, as `payrisk up` runs them
    try:
        uvicorn.run("gateway.app:create_app_from_env", factory=True, host="127.0.0.1", port=port, workers=workers,
                    **uvicorn_options(settings))
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
