#!/usr/bin/env bash
# Create .venv (if needed) and install payrisk with the given extras. Used by the README's two commands.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-embedded}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "payrisk: error: Python 3.11 or newer is required (found: $("$py" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$py" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "payrisk: the venv module is missing; installing virtualenv for this user" >&2
    "$py" -m pip install --user --quiet virtualenv 2>/dev/null || {
      echo "payrisk: error: cannot create a virtual environment: install python3-venv (apt install python3-venv)" >&2
      exit 2
    }
    "$py" -m virtualenv --quiet .venv
  fi
fi
stamp=".venv/.payrisk-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  touch "$stamp"
fi
# the dashboard's browser files (uPlot, Swagger UI) from npm at pinned versions, shipped in the package
bash scripts/dashboard-assets.sh
