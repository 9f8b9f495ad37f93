"""Deliver one outbox row: decide (policy), render, send, and say what happened. No database access here.

The caller (the dispatcher) records the result. `deliver` never raises for a failed send: failures come back
as `failed` (retry at `retry_at`) or `dead` (permanent, or out of attempts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from actors.notifier import alerts
from actors.notifier.email import SmtpSettings, build_alert_message, build_message, parse_mail_from, send_message
from actors.notifier.errors import DeliveryError, NotifierConfigError
from actors.notifier.messages import AlertPayload, EmailPayload, OutboxRow
from actors.notifier.policy import SendPolicy, backoff_delay, is_dead, message_id_for, next_send_time
from actors.notifier.smtp_pool import SmtpPool
from actors.notifier.tenants import AlertTargets, TenantNotifications, alert_targets, tenant_policy

Status = Literal["sent", "no_channel", "deferred", "failed", "dead"]
#: Why an alert was recorded as `no_channel` (neither the tenant nor the installation has an alert channel).
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
    def from_config(cls, values: Mapping[str, Any], policy: SendPolicy | None = None) -> NotifierSettings:
        """From the `notifier` part of an actor's configuration (`actors.system.notifier_config`: the platform's
        SMTP and alert settings, read once by `settings`).

        Raises NotifierConfigError naming the setting (SMTP_URL, MAIL_FROM, ALERT_WEBHOOK_SECRET).
        """
        smtp_url, mail_from = values.get("smtp_url") or None, values.get("mail_from") or cls().mail_from
        if smtp_url:
            SmtpSettings.from_url(smtp_url)
        parse_mail_from(mail_from)
        webhook_url, webhook_secret = values.get("webhook_url") or None, values.get("webhook_secret") or None
        if webhook_url and not webhook_secret:
            raise NotifierConfigError("ALERT_WEBHOOK_SECRET is required when ALERT_WEBHOOK_URL is set")
        slack = values.get("slack_webhook_url") or None
        return cls(smtp_url=SecretStr(smtp_url) if smtp_url else None, mail_from=mail_from,
                   slack_webhook_url=SecretStr(slack) if slack else None, webhook_url=webhook_url,
                   webhook_secret=SecretStr(webhook_secret) if webhook_secret else None, policy=policy or SendPolicy())

    @property
    def smtp(self) -> SmtpSettings | None:
        return SmtpSettings.from_url(self.smtp_url.get_secret_value()) if self.smtp_url else None

    @property
    def sender_address(self) -> str:
        return parse_mail_from(self.mail_from)

    @property
    def alert_targets(self) -> AlertTargets:
        """The installation's alert channels (a tenant's own replace them: `actors/notifier/tenants.py`)."""
        return AlertTargets(owner="installation", slack_url=self.slack_webhook_url, webhook_url=self.webhook_url,
                            webhook_secret=self.webhook_secret)


class TenantLookup(Protocol):
    """Each tenant's own notification settings (`actors/notifier/tenant_source.py`); None: the installation's."""

    async def get(self, tenant_id: str) -> TenantNotifications | None: ...


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
    """Sends notifications. One per process or Ray actor; call `aclose()` when done. With `tenants`, each tenant's
    quiet hours, time zone and alert channels replace the installation's for its rows."""

    def __init__(self, settings: NotifierSettings, http: httpx.AsyncClient | None = None,
                 tenants: TenantLookup | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.AsyncClient(timeout=settings.http_timeout)
        self._tenants = tenants
        self._smtp = SmtpPool()  # consecutive emails reuse their connections to the mail server

    @property
    def lookback(self) -> timedelta:
        """How far back the caller must read a customer's sends for the frequency caps."""
        return self.settings.policy.longest_window

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            await self._smtp.aclose()

    async def deliver(
        self, row: Mapping[str, Any], now: datetime, recent_sends: Sequence[datetime]
    ) -> DeliveryResult:
        """Deliver one outbox row. Not idempotent by itself: the caller must claim the row first.

        A resend after a crash is harmless for email (same Message-ID) and for the generic webhook (same `id`
        and idempotency header); a Slack channel may show the copy.
        """
        try:
            parsed = OutboxRow.model_validate(row)
            tenant = await self._tenants.get(parsed.tenant_id) if self._tenants is not None else None
            if parsed.topic == "email":
                payload = EmailPayload.model_validate(parsed.payload)
                policy = tenant_policy(self.settings.policy, tenant)
                return await self._guard(parsed, now, lambda: self._email(parsed, payload, now, recent_sends, policy))
            alert = AlertPayload.model_validate(parsed.payload)
            targets = alert_targets(self.settings.alert_targets, tenant)
            return await self._guard(parsed, now, lambda: self._alert(parsed, alert, now, targets))
        except ValidationError as error:  # malformed rows never become valid: dead-letter at once
            return DeliveryResult(outbox_id=int(row.get("outbox_id", 0)), status="dead", error=_short(error))

    async def deliver_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        now: datetime,
        recent_by_customer: Mapping[str, Sequence[datetime]],
    ) -> list[DeliveryResult]:
        """Deliver rows; returns their results in the rows' order. One customer's rows go in order, and an email
        sent in this batch counts toward the caps of that customer's next ones; different customers' rows go
        concurrently (each email is an SMTP conversation: in sequence, a batch took their sum); the SMTP pool
        keeps their connections open for the next batch."""
        sent: dict[str, list[datetime]] = {key: list(times) for key, times in recent_by_customer.items()}
        by_customer: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            key = customer_key(str(row.get("tenant_id")), str(row.get("payload", {}).get("customer_id")))
            by_customer.setdefault(key, []).append(index)
        results: list[DeliveryResult | None] = [None] * len(rows)

        async def one_customer(key: str, indexes: list[int]) -> None:
            for index in indexes:
                result = await self.deliver(rows[index], now, sent.get(key, []))
                if result.status == "sent" and result.channel == "email":
                    sent.setdefault(key, []).append(now)
                results[index] = result

        await asyncio.gather(*(one_customer(key, indexes) for key, indexes in by_customer.items()))
        return [result for result in results if result is not None]

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
        self, row: OutboxRow, payload: EmailPayload, now: datetime, recent_sends: Sequence[datetime],
        policy: SendPolicy,
    ) -> DeliveryResult:
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
        await send_message(smtp, message, self._smtp)
        return DeliveryResult(
            outbox_id=row.outbox_id,
            status="sent",
            channel="email",
            template=payload.template.value,
            recipient=payload.to,
            customer_id=payload.customer_id,
            detail={"message_id": message_id},
        )

    async def _alert(
        self, row: OutboxRow, alert: AlertPayload, now: datetime, targets: AlertTargets
    ) -> DeliveryResult:
        """Post to every complete channel of `targets`; any failure retries the alert on all of them."""
        customer = row.payload.get("fields", {}).get("customer_id")
        if not targets.names:
            return DeliveryResult(
                outbox_id=row.outbox_id,
                status="no_channel",
                error=NO_CHANNEL_REASON,
                channel="alert",
                template=alert.kind,
                customer_id=customer,
                detail={"targets": "", "severity": alert.severity, "reason": NO_CHANNEL_REASON},
            )
        for name in targets.names:
            await self._post_alert(name, targets, row, alert, now)
        sent_to = ",".join(targets.names)
        return DeliveryResult(
            outbox_id=row.outbox_id,
            status="sent",
            channel="alert",
            template=alert.kind,
            recipient=sent_to,
            customer_id=customer,
            detail={"targets": sent_to, "severity": alert.severity, "channels": targets.owner},
        )

    async def _post_alert(
        self, name: str, targets: AlertTargets, row: OutboxRow, alert: AlertPayload, now: datetime
    ) -> None:
        if name == "slack" and targets.slack_url is not None:
            await alerts.post_slack(self._http, targets.slack_url.get_secret_value(), alert, row.tenant_id)
        elif name == "webhook" and targets.webhook_url and targets.webhook_secret is not None:
            body = alerts.generic_body(alert, tenant_id=row.tenant_id, key=row.global_key, now=now)
            secret = targets.webhook_secret.get_secret_value()
            await alerts.post_signed(self._http, targets.webhook_url, secret, body, key=row.global_key, now=now)
        elif name == "email" and targets.email:
            await self._alert_email(targets.email, row, alert, now)

    async def _alert_email(self, to: str, row: OutboxRow, alert: AlertPayload, now: datetime) -> None:
        smtp = self.settings.smtp
        if smtp is None:
            raise DeliveryError("SMTP_URL is not set: no mail server for the tenant's alert email")
        address = self.settings.sender_address
        message_id = message_id_for(row.global_key, address.rpartition("@")[2])
        message = build_alert_message(alert, tenant_id=row.tenant_id, to=to, mail_from=address,
                                      message_id=message_id, key=row.idempotency_key, now=now)
        await send_message(smtp, message, self._smtp)

def _short(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid {error.title} payload: {where}: {first['msg']} ({error.error_count()} error(s))"
