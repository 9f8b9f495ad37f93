"""One log stream: a gateway process configured as `payrisk up` configures it, with uvicorn, the mail catcher
(aiosmtpd) and structlog all writing to stderr, is valid JSON line by line under concurrent load; request ids
reach the log lines of the request that caused them; `--log-format console` is readable text."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.stripe_events import SECRET, envelope, invoice, sign

SERVER = """
import logging, sys, uvicorn
from actors.notifier.catcher import start_catcher
from gateway.app import create_app
from settings import load_settings
from payrisk.httpserver import uvicorn_options
from settings.logging import configure_logging

settings = load_settings(dotenv=None)
configure_logging("info", settings.logging.format)
catcher = start_catcher(0, sys.argv[2])
print(catcher.smtp_url, file=open(sys.argv[3], "w"), flush=True)
logging.getLogger("psycopg.pool").warning("a third-party line with %s", "arguments")
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[1]), **{**uvicorn_options(settings),
                                                                                "log_level": "info"})
catcher.stop()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, database_url: str, redis_url: str, fmt: str) -> tuple[subprocess.Popen[str], str, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "STRIPE_WEBHOOK_SECRET": SECRET,
           "PAYRISK_LOG_FORMAT": fmt, "PAYRISK_SWEEP_INTERVAL": "3600", "PAYRISK_METRICS_INTERVAL": "0.5"}
    env.pop("RAY_ADDRESS", None)
    smtp_file = tmp_path / "smtp"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(tmp_path / "mail"), str(smtp_file)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200 and smtp_file.read_text().strip():
                return proc, url, smtp_file.read_text().strip()
        except (httpx.HTTPError, FileNotFoundError):
            pass
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    return err


async def load(url: str, good: int, bad: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        async def post(n: int, signed: bool) -> int:
            body = envelope(f"evt_log_{os.getpid()}_{n}_{signed}", "invoice.payment_failed",
                            invoice(f"in_log_{n}", f"cus_log_{n % 7}"))
            headers = {"stripe-signature": sign(body) if signed else "t=1,v1=00", "content-type": "application/json",
                       "x-request-id": f"req-{n}-{'ok' if signed else 'bad'}"}
            return (await client.post(url + "/webhooks/stripe", content=body, headers=headers)).status_code

        return await asyncio.gather(*[post(n, True) for n in range(good)], *[post(n, False) for n in range(bad)])


def mail(smtp_url: str) -> None:
    host, port = smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=10) as client:
        client.sendmail("a@payrisk.local", ["b@example.com"], "Subject: hi\r\n\r\nbody\r\n")


def test_the_log_stream_is_json_line_by_line_under_load(tmp_path: Path, database_url: str, redis_url: str) -> None:
    proc, url, smtp_url = start(tmp_path, database_url, redis_url, "json")
    try:
        statuses = asyncio.run(load(url, good=150, bad=150))
        mail(smtp_url)
        assert httpx.get(url + "/no/such/page", timeout=10).status_code in (401, 404)
    finally:
        err = stop(proc)
    assert sorted(set(statuses)) == [200, 400] or sorted(set(statuses)) == [200, 401], set(statuses)
    lines = [line for line in err.splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        record = json.loads(line)  # every line, whoever wrote it
        assert isinstance(record, dict) and {"event", "level", "timestamp"} <= set(record), line
        records.append(record)
    loggers = {r.get("logger") for r in records}
    assert {"uvicorn.error", "psycopg.pool"} <= loggers, loggers
    # the mail catcher's SMTP conversation (aiosmtpd logs every line at INFO) shows only at DEBUG
    # (settings.logging.CHATTY): mail was sent above, and none of its INFO lines is in the stream
    assert not [r for r in records if r.get("logger") == "mail.log" and r["level"] == "info"]
    assert any(r["event"] == "a third-party line with arguments" for r in records)
    unverified = [r for r in records if r["event"] == "webhook.unverified"]
    assert len(unverified) == statuses.count(400) + statuses.count(401) == 150
    assert all(r["request_id"].startswith("req-") and r["request_id"].endswith("-bad") for r in unverified)


def test_console_format_is_readable_text(tmp_path: Path, database_url: str, redis_url: str) -> None:
    proc, url, _ = start(tmp_path, database_url, redis_url, "console")
    try:
        asyncio.run(load(url, good=0, bad=3))
    finally:
        err = stop(proc)
    unverified = [line for line in err.splitlines() if "webhook.unverified" in line]
    assert len(unverified) == 3 and not unverified[0].lstrip().startswith("{")
    assert "request_id" in unverified[0]
