#!/bin/sh
# Entrypoint of the payrisk image (gateway, migrate, simulator, ray-head, ray-worker).
#
# - With RAY_AUTH_MODE=token, refuse to start without a token (RAY_AUTH_TOKEN, or a file at RAY_AUTH_TOKEN_PATH
#   or ~/.ray/auth_token): one clear line and exit 2, instead of Ray's retry loop against a cluster that
#   answers "unauthenticated".
# - `payrisk up` with RAY_ADDRESS=host:port first joins that cluster as a zero-CPU Ray node. A Ray driver needs a
#   raylet on its own host, and zero CPUs keeps the actors on the worker nodes. SIGTERM/SIGINT go to payrisk,
#   then the node leaves the cluster.
# - Anything else runs as given.
set -eu

die() {
    echo "payrisk-entrypoint: error: $*" >&2
    exit 2
}

require_ray_token() {
    [ "${RAY_AUTH_MODE:-}" = "token" ] || return 0
    [ -n "${RAY_AUTH_TOKEN:-}" ] && return 0
    [ -s "${RAY_AUTH_TOKEN_PATH:-${HOME:-/nonexistent}/.ray/auth_token}" ] && return 0
    die "RAY_AUTH_MODE=token but no Ray token: set RAY_AUTH_TOKEN (see docs/DEPLOYMENT.md, token auth)"
}

is_driver_joining_cluster() {
    [ "${1:-}" = "payrisk" ] && [ "${2:-}" = "up" ] && [ -n "${RAY_ADDRESS:-}" ] \
        && [ "${RAY_ADDRESS#ray://}" = "${RAY_ADDRESS}" ]
}

run_as_driver_node() {
    ray start --address="${RAY_ADDRESS}" --num-cpus=0 --disable-usage-stats
    "$@" &
    child=$!
    trap 'kill -TERM "${child}" 2>/dev/null || true' TERM INT
    status=0
    wait "${child}" || status=$?
    # A trapped signal ends `wait` early: wait again for payrisk to finish its own shutdown.
    if kill -0 "${child}" 2>/dev/null; then
        status=0
        wait "${child}" || status=$?
    fi
    ray stop --grace-period 10 > /dev/null 2>&1 || true
    exit "${status}"
}

[ "$#" -gt 0 ] || set -- payrisk up

case "${1}" in
    ray | payrisk) require_ray_token ;;
esac

if is_driver_joining_cluster "$@"; then
    run_as_driver_node "$@"
fi
exec "$@"
