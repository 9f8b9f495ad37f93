"""The gateway's HTTP server settings: uvicorn with a header read timeout, a connection cap and quiet logs.

uvicorn times out idle keep-alive connections but not a client that sends its request line or headers slowly
(slowloris): such a connection, and its file descriptor, stays open for ever. `GuardedHttpToolsProtocol` gives
every request `header_timeout` seconds to complete its headers, then answers 408 and closes. Bodies are timed
by the application (`gateway.limits.EdgeLimits`), the number of connections by uvicorn's `limit_concurrency`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from settings import Settings
from settings.logging import uvicorn_log_config

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\nconnection: close\r\n"
                     b"content-length: 120\r\n\r\n")
_TIMEOUT_BODY = (b'{"type":"https://payrisk.dev/problems/request-timeout","title":"Request Timeout","status":408,'
                 b'"detail":"headers too slow"}')
_TIMEOUT_RESPONSE = _TIMEOUT_RESPONSE.replace(b"120", str(len(_TIMEOUT_BODY)).encode()) + _TIMEOUT_BODY


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus: the request line and headers must arrive within `header_timeout`."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "payrisk_header_timeout", None)
                                    or os.environ.get("PAYRISK_HEADER_TIMEOUT") or 10.0)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` shared by `payrisk up`, the demo and chaos."""
    os.environ.setdefault("PAYRISK_HEADER_TIMEOUT", str(settings.gateway.header_timeout_seconds))
    return {"http": GuardedHttpToolsProtocol, "limit_concurrency": settings.gateway.max_connections,
            "timeout_keep_alive": 5, "log_level": "warning", "access_log": False,
            "log_config": uvicorn_log_config()}  # uvicorn's loggers go through the one structlog formatter


def gateway_config(app: Any, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", **uvicorn_options(settings))
    config.payrisk_header_timeout = settings.gateway.header_timeout_seconds  # type: ignore[attr-defined]
    return config
