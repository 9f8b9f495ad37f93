#!/usr/bin/env bash
# What the benchmark suite (bench/) needs besides Python packages: wrk (load generator), pgbench (PostgreSQL's
# ceiling) and redis-benchmark (Redis's), from Debian. Idempotent: installs only what is missing.
# Usage: bash scripts/bench-deps.sh   (then .venv/bin/python -m bench.run all; see bench/README.md)
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v pgbench >/dev/null || missing+=(postgresql-contrib)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "payrisk: installing ${missing[*]} for the benchmarks" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "payrisk: error: the benchmarks need ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 2
fi
