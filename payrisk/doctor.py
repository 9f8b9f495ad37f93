"""`payrisk doctor`: check the environment `payrisk up` will run in, one line per check, and say what to fix.

Each check is `ok`, `warn` (works, but not as an operator probably wants) or `FAIL` (`payrisk up` would stop, or
webhooks / retries cannot work). Exit 1 when any check fails. Nothing is started and nothing is written: servers
are only connected to, with short timeouts."""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from settings import Settings, load_settings

TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | FAIL
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<18} {self.detail}"
        return f"{text} → {self.fix}" if self.fix else text


def redact(url: str) -> str:
    """`url` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_postgres(settings: Settings) -> Check:
    if not settings.database.url:
        return Check("postgresql", "ok", f"embedded, started by `payrisk up` in {settings.data_dir}")
    from store import StoreError
    from store.db import probe

    url = redact(settings.database.url)
    try:
        found = probe(settings.database.url, timeout=int(TIMEOUT))
    except StoreError as exc:
        return Check("postgresql", "FAIL", f"{url}: {first_line(exc)}",
                     "start PostgreSQL or fix DATABASE_URL")
    version = found.get("server_version", "?")
    if not found.get("migrated"):
        return Check("postgresql", "warn", f"{url}: PostgreSQL {version}, migrations not applied",
                     "run `payrisk migrate` (`payrisk up` does it too)")
    return Check("postgresql", "ok", f"{url}: PostgreSQL {version}")


def check_redis(settings: Settings) -> Check:
    if not settings.redis.url:
        return Check("redis", "ok", "embedded, started by `payrisk up`")
    import redis

    url = redact(settings.redis.url)
    try:
        client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        info = client.info("server")
        client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return Check("redis", "FAIL", f"{url}: {first_line(exc)}", "start Redis or fix REDIS_URL")
    return Check("redis", "ok", f"{url}: Redis {info.get('redis_version', '?')}")


def _tcp(host: str, port: int) -> str | None:
    """None when host:port accepts a connection, else why not."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _port_free(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return None
        except OSError as exc:
            return exc.strerror or type(exc).__name__


def check_ray(settings: Settings) -> Check:
    if settings.ray.address:
        host, _, port = settings.ray.address.rpartition(":")
        if not port.isdigit():
            return Check("ray", "FAIL", f"RAY_ADDRESS={settings.ray.address}: not host:port",
                         "set RAY_ADDRESS to the head's GCS address (host:6380)")
        why = _tcp(host or "127.0.0.1", int(port))
        if why:
            return Check("ray", "FAIL", f"RAY_ADDRESS={settings.ray.address}: {why}",
                         "start the Ray head (`ray start --head`) or fix RAY_ADDRESS")
        return Check("ray", "ok", f"cluster at {settings.ray.address} answers (token: RAY_AUTH_TOKEN_PATH)")
    if settings.ray.dashboard_port:
        why = _port_free("127.0.0.1", settings.ray.dashboard_port)
        if why:
            return Check("ray", "FAIL", f"dashboard port 127.0.0.1:{settings.ray.dashboard_port}: {why}",
                         "free the port or set PAYRISK_DASHBOARD_PORT (or `payrisk up --no-dashboard`)")
    return Check("ray", "ok", f"local Ray on 127.0.0.1, dashboard port {settings.ray.dashboard_port} free")


def check_gateway_port(settings: Settings) -> Check:
    why = _port_free(settings.gateway.host, settings.gateway.port)
    if why:
        running = _http_ok(f"http://{_connect_host(settings.gateway.host)}:{settings.gateway.port}/healthz")
        if running:
            return Check("gateway", "ok", f"already running on {settings.gateway.host}:{settings.gateway.port}")
        return Check("gateway", "FAIL", f"cannot listen on {settings.gateway.host}:{settings.gateway.port}: {why}",
                     "free the port or set PAYRISK_PORT")
    return Check("gateway", "ok", f"{settings.gateway.host}:{settings.gateway.port} free")


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=TIMEOUT).status_code == 200
    except httpx.HTTPError:
        return False


def check_smtp(settings: Settings) -> Check:
    if not settings.smtp.url:
        return Check("smtp", "warn", "SMTP_URL not set: emails go to the local catcher (data dir mail/), not to "
                     "customers", "set SMTP_URL=smtp://user:pass@host:587?starttls=true")
    parts = urlsplit(settings.smtp.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (465 if parts.scheme == "smtps" else 25)
    try:
        client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT) if parts.scheme == "smtps" else smtplib.SMTP(
            host, port, timeout=TIMEOUT)
        code, _ = client.noop()
        client.quit()
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", "FAIL", f"{redact(settings.smtp.url)}: {first_line(exc)}",
                     "start the mail server or fix SMTP_URL")
    return Check("smtp", "ok" if code == 250 else "warn", f"{redact(settings.smtp.url)} answers ({code})")


def check_provider_keys(settings: Settings) -> list[Check]:
    checks = []
    if settings.stripe.webhook_secrets:
        checks.append(Check("stripe webhooks", "ok", f"{len(settings.stripe.webhook_secrets)} signing secret(s)"))
    else:
        checks.append(Check("stripe webhooks", "warn", "STRIPE_WEBHOOK_SECRET not set: default-tenant Stripe "
                            "webhooks are refused", "set STRIPE_WEBHOOK_SECRET=whsec_… (or per tenant: "
                            "`payrisk tenants update --secrets-file`)"))
    if settings.stripe.api_key:
        live = settings.stripe.api_key.startswith(("sk_live_", "rk_live_"))
        checks.append(Check("stripe api key", "ok", f"{'live' if live else 'test'} key set"
                            + (f", base {settings.stripe.api_base}" if settings.stripe.api_base else "")))
    else:
        checks.append(Check("stripe api key", "warn", "STRIPE_API_KEY not set: no retries, decline details "
                            "only from webhooks", "set STRIPE_API_KEY (a restricted key with invoices:write)"))
    others = [name for name, on in (("adyen", settings.adyen.hmac_keys), ("paddle", settings.paddle.webhook_secrets),
                                    ("braintree", settings.braintree.merchant_id),
                                    ("generic", settings.generic.webhook_secrets)) if on]
    if others:
        checks.append(Check("other providers", "ok", ", ".join(others)))
    return checks


def check_webhook_reachability(settings: Settings) -> Check:
    base = f"http://{_connect_host(settings.gateway.host)}:{settings.gateway.port}"
    if not _http_ok(base + "/healthz"):
        return Check("webhook endpoint", "warn", f"{base}/webhooks/stripe: gateway not running",
                     "start it with `payrisk up`, then run `payrisk doctor` again")
    import httpx

    try:
        answer = httpx.post(base + "/webhooks/stripe", content=b"{}", timeout=TIMEOUT,
                            headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        return Check("webhook endpoint", "FAIL", f"{base}/webhooks/stripe: {first_line(exc)}", "see the gateway log")
    # an unsigned body must be refused (400/401), never stored: anything else means a proxy answers, or no secret
    if answer.status_code in (400, 401):
        hint = "" if settings.gateway.host not in ("127.0.0.1", "localhost", "::1") else (
            "bound to loopback: the provider reaches it only through a reverse proxy or tunnel")
        return Check("webhook endpoint", "ok" if not hint else "warn",
                     f"{base}/webhooks/stripe answers, refuses unsigned bodies", hint)
    return Check("webhook endpoint", "FAIL", f"{base}/webhooks/stripe answered {answer.status_code} to an "
                 "unsigned body", "set STRIPE_WEBHOOK_SECRET for the gateway")


def run_checks(settings: Settings) -> list[Check]:
    return [check_postgres(settings), check_redis(settings), check_ray(settings), check_gateway_port(settings),
            check_smtp(settings), *check_provider_keys(settings), check_webhook_reachability(settings)]


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(load_settings())
    failed = [c for c in checks if c.status == "FAIL"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}))
    else:
        for check in checks:
            print(check.line(), flush=True)
        warned = sum(c.status == "warn" for c in checks)
        print(f"{len(failed)} failed, {warned} warning(s)" if failed or warned else "all checks passed",
              file=sys.stderr)
    return 1 if failed else 0
