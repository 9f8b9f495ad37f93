"""Edge limits as one pure-ASGI middleware: no NUL in a path or query, a body size cap and a body read timeout.

PostgreSQL text cannot hold U+0000, so a NUL that reached a query would end as a 500; it is refused here, with
a reason, before any handler runs. Bodies of every route (the webhook endpoint has its own, configurable cap
and keeps it) are capped, and a client whose body takes longer than `body_timeout` in all is answered
408 instead of holding a connection and a task for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import ProblemError, problem_response


def has_nul(raw: bytes | str) -> bool:
    """True when `raw` (a path or a query string, percent-encoded or not) carries a NUL character."""
    data = raw.encode("latin-1", "replace") if isinstance(raw, str) else raw
    return b"\x00" in data or (b"%" in data and b"\x00" in unquote_to_bytes(data))


class EdgeLimits:
    """Refuse NUL in the path or query (400), bodies over `max_body` (413), and slow bodies (408)."""

    def __init__(self, app: ASGIApp, max_body: int = 1024 * 1024, body_timeout: float = 15.0) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self._deadlines = BodyDeadlines(min(1.0, body_timeout / 4))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        query = scope.get("query_string", b"")
        if has_nul(path) or has_nul(query) or "\x00" in scope.get("path", ""):
            response = problem_response(400, "invalid-parameter", "Invalid parameter",
                                        "a NUL character (%00) is not allowed in a path or query value",
                                        scope.get("path", "").replace("\x00", "\\u0000"))
            await response(scope, receive, send)
            return
        declared = _content_length(scope)
        limit = self._limit(scope)
        if declared is not None and declared > limit:
            response = problem_response(413, "body-too-large", "Body too large",
                                        f"body of {declared} bytes exceeds {limit} bytes", scope.get("path"))
            await response(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._guarded(receive, limit), tracked)
        except ProblemError as exc:  # raised by our receive in a layer outside the app's exception handlers
            if started:
                raise
            response = problem_response(exc.status, exc.slug, exc.title, exc.detail, scope.get("path"), **exc.extra)
            await response(scope, receive, send)

    def _limit(self, scope: Scope) -> int:
        # the webhook endpoint enforces its own (PAYRISK_MAX_BODY_BYTES) cap with its own message; never lower
        return max(self.max_body, 1) if not str(scope.get("path", "")).startswith("/webhooks/") else 1 << 62

    def _guarded(self, receive: Receive, limit: int) -> Receive:
        size = 0
        deadline: float | None = None
        complete = False

        async def guarded() -> Message:
            nonlocal size, deadline, complete
            if complete:  # the body is in: what may follow (a disconnect) has no deadline
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.body_timeout  # the whole body, not each chunk
            if loop.time() >= deadline:
                raise self._too_slow()
            task = asyncio.current_task()
            if task is None:  # not in a task (an ASGI server always runs the app in one): nothing to cancel
                return await receive()
            self._deadlines.watch(task, deadline, loop)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if self._deadlines.expired(task):  # cancelled by the deadline, not by anyone else
                    raise self._too_slow() from None
                raise
            finally:
                self._deadlines.release(task)
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise ProblemError(413, "body-too-large", "Body too large", f"body exceeds {limit} bytes")
                complete = not message.get("more_body", False)
            return message

        return guarded

    def _too_slow(self) -> ProblemError:
        return ProblemError(408, "request-timeout", "Request Timeout",
                            f"the body did not arrive within {self.body_timeout:g} s")


class BodyDeadlines:
    """The body reads waiting on their client, each with its deadline, checked every `period` seconds by one timer
    per event loop (armed while any read waits): a read past its deadline has its task cancelled, and `expired`
    then tells the reader the cancellation was the deadline's. An `asyncio.timeout` around every read cost a
    timer armed and cancelled per request — a tenth of a webhook's CPU — although almost every body is already
    there when it is read; a deadline is now met within `period` instead of to the millisecond."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timers: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}

    def watch(self, task: asyncio.Task[Any], deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting[task] = deadline
        if loop not in self._timers:
            self._timers[loop] = loop.call_later(self._period, self._sweep, loop)

    def release(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """True once for a task this cancelled; its cancellation request is withdrawn (`Task.uncancel`)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now, watched = loop.time(), False
        for task, deadline in list(self._waiting.items()):
            if task.get_loop() is not loop:
                continue
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
            watched = True
        if watched:
            self._timers[loop] = loop.call_later(self._period, self._sweep, loop)
        else:  # nothing waits on this loop: no timer, and no reference to the loop kept
            del self._timers[loop]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
    return None


def nul_free(value: Any) -> bool:
    """True when no string inside `value` (JSON-like: dicts, lists, strings) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(nul_free(k) and nul_free(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(nul_free(v) for v in value)
    return True
