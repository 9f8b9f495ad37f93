"""Deliver one outbox row: decide (policy), render, send, and say what happened. No database access here.

The caller (the dispatcher) records the result. `deliver` never raises for a failed send: failures come back
as `failed` (retry at `retry_at`) or `dead` (permanent, or out of attempts).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from actors.notifier import alerts
from actors.notifier.email import SmtpSettings, build_message, parse_mail_from, send_message
from actors.notifier.errors import DeliveryError, NotifierConfigError
from actors.notifier.messages import AlertPayload, EmailPayload, OutboxRow
from actors.notifier.policy import SendPolicy, backoff_delay, is_dead, message_id_for, next_send_time

Status = Literal["sent", "no_channel", "deferred", "failed", "dead"]
#: Why an alert was recorded as `no_channel` (neither SLACK_WEBHOOK_URL nor ALERT_WEBHOOK_URL is set).
NO_CHANNEL_REASON = "no alert channel configured"


class NotifierSettings(BaseModel):
    """Where notifications go. No `smtp_url`: emails fail and retry. No webhooks: alerts are `no_channel`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    smtp_url: SecretStr | None = None
    mail_from: str = "payrisk@localhost.localdomain"
    slack_webhook_url: SecretStr | None = None  # Slack's URL is itself the credential
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    policy: SendPolicy = SendPolicy()
    http_timeout: float = 10.0

    @model_validator(mode="after")
    def _consistent(self) -> NotifierSettings:
        parse_mail_from(self.mail_from)
        if self.smtp_url is not None:
            SmtpSettings.from_url(self.smtp_url.get_secret_value())
        if self.webhook_url and not self.webhook_secret:
            raise NotifierConfigError("ALERT_WEBHOOK_SECRET is required when ALERT_WEBHOOK_URL is set")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], policy: SendPolicy | None = None) -> NotifierSettings:
        """From SMTP_URL, MAIL_FROM, SLACK_WEBHOOK_URL, ALERT_WEBHOOK_URL, ALERT_WEBHOOK_SECRET.

        Raises NotifierConfigError naming the bad setting (before pydantic would wrap it).
        """
        smtp_url, mail_from = env.get("SMTP_URL") or None, env.get("MAIL_FROM") or cls().mail_from
        if smtp_url:
            SmtpSettings.from_url(smtp_url)
        parse_mail_from(mail_from)
        if env.get("ALERT_WEBHOOK_URL") and not env.get("ALERT_WEBHOOK_SECRET"):
            raise NotifierConfigError("ALERT_WEBHOOK_SECRET is required when ALERT_WEBHOOK_URL is set")
        return cls(
            smtp_url=SecretStr(smtp_url) if smtp_url else None,
            mail_from=mail_from,
            slack_webhook_url=SecretStr(env["SLACK_WEBHOOK_URL"]) if env.get("SLACK_WEBHOOK_URL") else None,
            webhook_url=env.get("ALERT_WEBHOOK_URL") or None,
            webhook_secret=SecretStr(env["ALERT_WEBHOOK_SECRET"])
            if env.get("ALERT_WEBHOOK_SECRET")
            else None,
            policy=policy or SendPolicy(),
        )

    @property
    def smtp(self) -> SmtpSettings | None:
        return SmtpSettings.from_url(self.smtp_url.get_secret_value()) if self.smtp_url else None

    @property
    def sender_address(self) -> str:
        return parse_mail_from(self.mail_from)


class DeliveryResult(BaseModel):
    """What happened to one outbox row; enough for the caller to record it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outbox_id: int
    status: Status
    retry_at: datetime | None = None  # for deferred and failed
    error: str | None = None
    channel: Literal["email", "alert"] | None = None
    template: str | None = None  # email template or alert kind
    recipient: str | None = None
    customer_id: str | None = None
    detail: dict[str, str] = {}


def customer_key(tenant_id: str, customer_id: str) -> str:
    """The key of `recent_by_customer` maps: customers are unique per tenant only."""
    return f"{tenant_id}/{customer_id}"


Attempt = Callable[[], Coroutine[Any, Any, DeliveryResult]]


class Sender:
    """Sends notifications. One per process or Ray actor; call `aclose()` when done."""

    def __init__(self, settings: NotifierSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.AsyncClient(timeout=settings.http_timeout)

    @property
    def lookback(self) -> timedelta:
        """How far back the caller must read a customer's sends for the frequency caps."""
        return self.settings.policy.longest_window

    async def aclose(self) -> None:
        await self._http.aclose()

    async def deliver(
        self, row: Mapping[str, Any], now: datetime, recent_sends: Sequence[datetime]
    ) -> DeliveryResult:
        """Deliver one outbox row. Not idempotent by itself: the caller must claim the row first.

        A resend after a crash is harmless for email (same Message-ID) and for the generic webhook (same `id`
        and idempotency header); a Slack channel may show the copy.
        """
        try:
            parsed = OutboxRow.model_validate(row)
            if parsed.topic == "email":
                payload = EmailPayload.model_validate(parsed.payload)
                return await self._guard(parsed, now, lambda: self._email(parsed, payload, now, recent_sends))
            alert = AlertPayload.model_validate(parsed.payload)
            return await self._guard(parsed, now, lambda: self._alert(parsed, alert, now))
        except ValidationError as error:  # malformed rows never become valid: dead-letter at once
            return DeliveryResult(outbox_id=int(row.get("outbox_id", 0)), status="dead", error=_short(error))

    async def deliver_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        now: datetime,
        recent_by_customer: Mapping[str, Sequence[datetime]],
    ) -> list[DeliveryResult]:
        """Deliver rows in order; an email sent in this batch counts toward the caps of the next ones."""
        sent: dict[str, list[datetime]] = {key: list(times) for key, times in recent_by_customer.items()}
        results = []
        for row in rows:
            key = customer_key(str(row.get("tenant_id")), str(row.get("payload", {}).get("customer_id")))
            result = await self.deliver(row, now, sent.get(key, []))
            if result.status == "sent" and result.channel == "email":
                sent.setdefault(key, []).append(now)
            results.append(result)
        return results

    async def _guard(self, row: OutboxRow, now: datetime, attempt: Attempt) -> DeliveryResult:
        try:
            return await attempt()
        except DeliveryError as error:
            attempts = row.attempts + 1
            policy = self.settings.policy
            if error.permanent or is_dead(attempts, policy.max_attempts):
                return DeliveryResult(outbox_id=row.outbox_id, status="dead", error=str(error))
            delay = backoff_delay(attempts, policy.backoff_base, policy.backoff_cap)
            return DeliveryResult(
                outbox_id=row.outbox_id, status="failed", retry_at=now + delay, error=str(error)
            )

    async def _email(
        self, row: OutboxRow, payload: EmailPayload, now: datetime, recent_sends: Sequence[datetime]
    ) -> DeliveryResult:
        policy = self.settings.policy
        counted = () if payload.template.value in policy.uncapped_templates else recent_sends
        when = next_send_time(now, counted, payload.timezone, policy)
        if when > now:
            return DeliveryResult(outbox_id=row.outbox_id, status="deferred", retry_at=when)
        smtp = self.settings.smtp
        if smtp is None:
            raise DeliveryError("SMTP_URL is not set: no mail server to send to")
        address = self.settings.sender_address
        message_id = message_id_for(row.global_key, address.rpartition("@")[2])
        message = build_message(
            payload, mail_from=address, message_id=message_id, key=row.idempotency_key, now=now
        )
        await send_message(smtp, message)
        return DeliveryResult(
            outbox_id=row.outbox_id,
            status="sent",
            channel="email",
            template=payload.template.value,
            recipient=payload.to,
            customer_id=payload.customer_id,
            detail={"message_id": message_id},
        )

    async def _alert(self, row: OutboxRow, alert: AlertPayload, now: datetime) -> DeliveryResult:
        settings, targets = self.settings, []
        if settings.slack_webhook_url is None and not (settings.webhook_url and settings.webhook_secret):
            return DeliveryResult(
                outbox_id=row.outbox_id,
                status="no_channel",
                error=NO_CHANNEL_REASON,
                channel="alert",
                template=alert.kind,
                customer_id=row.payload.get("fields", {}).get("customer_id"),
                detail={"targets": "", "severity": alert.severity, "reason": NO_CHANNEL_REASON},
            )
        if settings.slack_webhook_url is not None:
            await alerts.post_slack(
                self._http, settings.slack_webhook_url.get_secret_value(), alert, row.tenant_id
            )
            targets.append("slack")
        if settings.webhook_url and settings.webhook_secret:
            body = alerts.generic_body(alert, tenant_id=row.tenant_id, key=row.global_key, now=now)
            secret = settings.webhook_secret.get_secret_value()
            await alerts.post_signed(
                self._http, settings.webhook_url, secret, body, key=row.global_key, now=now
            )
            targets.append("webhook")
        return DeliveryResult(
            outbox_id=row.outbox_id,
            status="sent",
            channel="alert",
            template=alert.kind,
            recipient=",".join(targets),
            customer_id=row.payload.get("fields", {}).get("customer_id"),
            detail={"targets": ",".join(targets), "severity": alert.severity},
        )


def _short(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid {error.title} payload: {where}: {first['msg']} ({error.error_count()} error(s))"
