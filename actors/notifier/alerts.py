"""Engineering, fraud and first-failure alerts: Slack-compatible incoming webhooks and signed webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson

from actors.notifier.errors import DeliveryError
from actors.notifier.messages import AlertPayload
from actors.notifier.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    verify_signature,
)

__all__ = ["SignatureError", "generic_body", "post_signed", "post_slack", "slack_body", "verify_signature"]

_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_RETRYABLE_STATUS = frozenset({408, 425, 429})


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field_sections(fields: dict[str, str]) -> list[dict[str, Any]]:
    items = [{"type": "mrkdwn", "text": f"*{_escape(k)}*\n{_escape(v)}"[:2000]} for k, v in fields.items()]
    # Slack allows at most 10 fields per section block.
    return [{"type": "section", "fields": items[i : i + 10]} for i in range(0, len(items), 10)]


def slack_body(alert: AlertPayload, tenant_id: str) -> dict[str, Any]:
    """An incoming-webhook message: `text` is the notification fallback, `blocks` the rich layout."""
    fallback = f"{_EMOJI[alert.severity]} [{alert.severity}] {alert.title}: {alert.text}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(alert.text)[:3000] or " "}},
        *_field_sections(alert.fields),
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"{_EMOJI[alert.severity]} {alert.severity} · {alert.kind}"},
                {"type": "mrkdwn", "text": f"tenant `{_escape(tenant_id)}`"},
            ],
        },
    ]
    return {"text": _escape(fallback), "blocks": blocks}


def generic_body(alert: AlertPayload, *, tenant_id: str, key: str, now: datetime) -> bytes:
    """The generic webhook's JSON body. `id` is stable across resends: receivers dedupe on it."""
    document = {"id": key, "tenant_id": tenant_id, "created_at": now.isoformat(), **alert.model_dump()}
    return orjson.dumps(document)


def _check(response: httpx.Response, target: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    permanent = 400 <= status < 500 and status not in _RETRYABLE_STATUS
    raise DeliveryError(f"{target} answered HTTP {status}: {response.text[:200]}", permanent=permanent)


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], target: str
) -> None:
    headers = {"Content-Type": "application/json", **headers}
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        raise DeliveryError(f"{target} unreachable: {error!r}") from error
    _check(response, target)


async def post_slack(client: httpx.AsyncClient, url: str, alert: AlertPayload, tenant_id: str) -> None:
    """POST the Slack-compatible message; DeliveryError on failure."""
    await _post(client, url, orjson.dumps(slack_body(alert, tenant_id)), {}, "Slack webhook")


async def post_signed(
    client: httpx.AsyncClient, url: str, secret: str, body: bytes, *, key: str, now: datetime
) -> None:
    """POST `body` with `Payrisk-Signature: t=<unix>,v1=<hmac>` and the idempotency key header."""
    headers = {SIGNATURE_HEADER: sign(secret, body, int(now.timestamp())), IDEMPOTENCY_HEADER: key}
    await _post(client, url, body, headers, "alert webhook")
