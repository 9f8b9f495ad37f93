#!/usr/bin/env bash
# What the browser tests need besides Python packages, installed at install time (never during a test run):
# Debian's chromium (driven by Playwright through executable_path) and the OpenID provider the OIDC tests start
# (npm `oidc-provider`, pinned in tests/oidc/package-lock.json). Idempotent: does nothing when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "payrisk: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "payrisk: error: the browser tests need /usr/bin/chromium (apt-get install chromium)" >&2
    exit 2
  fi
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "payrisk: error: the OIDC tests need Node.js and npm (apt-get install nodejs npm)" >&2
    exit 2
  fi
fi
stamp=tests/oidc/node_modules/.payrisk-installed
if [ ! -f "$stamp" ] || [ tests/oidc/package-lock.json -nt "$stamp" ]; then
  npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamp"
fi
# The dashboard tests: axe-core (accessibility checks, pinned in tests/browser/a11y/package-lock.json) and the
# dashboard's bundled browser files (scripts/dashboard-assets.sh, also run by scripts/bootstrap.sh).
stamp=tests/browser/a11y/node_modules/.payrisk-installed
if [ ! -f "$stamp" ] || [ tests/browser/a11y/package-lock.json -nt "$stamp" ]; then
  npm ci --prefix tests/browser/a11y --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamp"
fi
bash scripts/dashboard-assets.sh
