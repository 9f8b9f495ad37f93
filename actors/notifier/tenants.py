"""A tenant's own notification settings, and how they override the installation's. Pure: the values are read and
decrypted by `actors/notifier/tenant_source.py`; the sender applies them to each row.

What a tenant sets (`payrisk tenants update`, `PATCH /api/admin/tenants/{tenant}`; store/tenant_model.py):

- `quiet_hours` replace the installation's window for its customers (`start == end`: no quiet hours at all);
  its `timezone` is the zone of customers whose own zone is unknown.
- `alert_channels.webhook_url` with the secret `alert_webhook_secret`, the secret `slack_webhook_url`, and
  `alert_channels.email`: its alerts go to these channels — only these — as soon as one of them is complete.
  A tenant with none (or only a webhook URL without its signing secret) keeps the installation's channels.

Branding is not here: it is part of each email's payload, fixed when the case decided to send it
(`actors/planning.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from actors.notifier.policy import QuietHours, SendPolicy

Owner = Literal["tenant", "installation"]
_EMAIL = r"^[^@\s<>]+@[^@\s<>]+$"


class AlertTargets(BaseModel):
    """Where one alert goes. The secrets stay wrapped so that a repr or a log line never shows them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: Owner = "installation"
    slack_url: SecretStr | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    email: str | None = Field(default=None, pattern=_EMAIL)

    @property
    def has_webhook(self) -> bool:
        """A generic webhook needs both its URL and the secret that signs it."""
        return bool(self.webhook_url and self.webhook_secret)

    @property
    def names(self) -> list[str]:
        """The complete channels, in the order they are tried."""
        present = {"slack": self.slack_url is not None, "webhook": self.has_webhook, "email": bool(self.email)}
        return [name for name, on in present.items() if on]


class TenantNotifications(BaseModel):
    """What one tenant set for its notifications; every field absent means the installation's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_hours: QuietHours | None = None
    timezone: str | None = None
    alerts: AlertTargets = AlertTargets(owner="tenant")

    @classmethod
    def from_stored(cls, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> TenantNotifications:
        """From `tenants.settings` and the tenant's opened secrets (`slack_webhook_url`, `alert_webhook_secret`).
        Raises pydantic's ValidationError when a stored value is not one the tenant model accepts."""
        channels = settings.get("alert_channels") or {}
        slack, secret = secrets.get("slack_webhook_url"), secrets.get("alert_webhook_secret")
        alerts = AlertTargets(owner="tenant", slack_url=SecretStr(slack) if slack else None,
                              webhook_url=channels.get("webhook_url") or None,
                              webhook_secret=SecretStr(secret) if secret else None,
                              email=channels.get("email") or None)
        zone = settings.get("timezone")
        return cls(quiet_hours=settings.get("quiet_hours") or None, timezone=zone if _known(zone) else None,
                   alerts=alerts)


def _known(zone: object) -> bool:
    if not isinstance(zone, str) or not zone:
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def tenant_policy(policy: SendPolicy, tenant: TenantNotifications | None) -> SendPolicy:
    """The installation's send policy with the tenant's quiet hours and default zone in place of its own."""
    if tenant is None:
        return policy
    changes: dict[str, Any] = {}
    if tenant.quiet_hours is not None:
        changes["quiet_hours"] = tenant.quiet_hours
    if tenant.timezone is not None:
        changes["default_timezone"] = tenant.timezone
    return policy.model_copy(update=changes) if changes else policy


def alert_targets(installation: AlertTargets, tenant: TenantNotifications | None) -> AlertTargets:
    """The tenant's channels when it has a complete one, else the installation's (never a mix of the two)."""
    if tenant is not None and tenant.alerts.names:
        return tenant.alerts
    return installation
