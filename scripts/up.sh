#!/usr/bin/env bash
# Install (first run only) and run the platform: embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh embedded
exec .venv/bin/payrisk up "$@"
