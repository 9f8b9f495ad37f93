#!/usr/bin/env bash
# The dashboard's browser files, taken from the npm registry at the versions pinned in
# gateway/dashboard/assets/package-lock.json (npm checks each tarball's integrity), copied into
# gateway/dashboard/static/vendor/ so that the package ships them: no CDN at run time. Run at install time by
# scripts/bootstrap.sh; idempotent (does nothing when the lock file has not changed since the last copy).
set -euo pipefail
cd "$(dirname "$0")/.."
assets=gateway/dashboard/assets
vendor=gateway/dashboard/static/vendor
stamp="$vendor/.installed"
if [ -f "$stamp" ] && [ ! "$assets/package-lock.json" -nt "$stamp" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "payrisk: warning: npm not found; the dashboard's charts and /docs viewer need scripts/dashboard-assets.sh" >&2
  exit 0
fi
# installed outside the package (build/ is ignored), so that only the copied files ship
work=build/dashboard-assets
mkdir -p "$work"
cp "$assets/package.json" "$assets/package-lock.json" "$work/"
npm ci --prefix "$work" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
modules="$work/node_modules"
rm -rf "$vendor"
mkdir -p "$vendor/uplot" "$vendor/swagger-ui"
cp "$modules/uplot/dist/uPlot.iife.min.js" "$modules/uplot/dist/uPlot.min.css" "$modules/uplot/LICENSE" \
  "$vendor/uplot/"
cp "$modules/swagger-ui-dist/swagger-ui-bundle.js" "$modules/swagger-ui-dist/swagger-ui.css" \
  "$modules/swagger-ui-dist/LICENSE" "$vendor/swagger-ui/"
node -e 'for (const p of ["uplot", "swagger-ui-dist"]) { const m = require(`./${process.argv[1]}/${p}/package.json`);
  console.log(`${m.name} ${m.version}`) }' "$modules" > "$vendor/VERSIONS"
touch "$stamp"
