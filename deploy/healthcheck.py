"""Container health probe: exit 0 when a URL answers 2xx (or a TCP port accepts), 1 otherwise.

The slim image has no curl; this uses only the standard library. Usage:
    python deploy/healthcheck.py                      # http://127.0.0.1:$PAYRISK_PORT/healthz
    python deploy/healthcheck.py http://127.0.0.1:8265/api/gcs_healthz
    python deploy/healthcheck.py tcp://127.0.0.1:12111
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 4.0


def default_url(environ: dict[str, str]) -> str:
    """The gateway's liveness endpoint on the port the container serves."""
    return f"http://127.0.0.1:{environ.get('PAYRISK_PORT', '8000')}/healthz"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError):
        return False


def tcp_ok(url: str) -> bool:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def probe(url: str) -> bool:
    return tcp_ok(url) if url.startswith("tcp://") else http_ok(url)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else default_url(dict(os.environ))
    healthy = probe(url)
    if not healthy:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
