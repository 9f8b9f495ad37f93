"""What an operator may set on a tenant, validated once at the edge (API and CLI share it).

Secrets (`stripe_api_key`, `stripe_webhook_secrets`, `alert_webhook_secret`, `slack_webhook_url`, and the other
providers' credentials of docs/PROVIDERS.md: `adyen_*`, `braintree_*`, `paddle_webhook_secrets`,
`generic_webhook_secrets`) are write-only: stored encrypted (store/tenant_secrets.py) and answered masked.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from store.secrets import mask

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no NUL or other control characters
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
SECRET_FIELDS = ("stripe_api_key", "stripe_webhook_secrets", "alert_webhook_secret", "slack_webhook_url",
                 "adyen_hmac_keys", "adyen_webhook_basic_auth", "adyen_api_key", "adyen_merchant_account",
                 "braintree_merchant_id", "braintree_public_key", "braintree_private_key", "paddle_webhook_secrets",
                 "generic_webhook_secrets")
#: the list-valued secrets (several while rotating) → the form of each value
_LIST_FORMS = {"stripe_webhook_secrets": (r"whsec_[A-Za-z0-9_+/=]{6,250}", "whsec_… (letters, digits)"),
               "adyen_hmac_keys": (r"[0-9A-Fa-f]{32,128}", "a hex HMAC key (Adyen's Customer Area generates 64 hex)"),
               "paddle_webhook_secrets": (r"pdl_ntfset_[A-Za-z0-9_]{6,250}", "pdl_ntfset_… (letters, digits)"),
               "generic_webhook_secrets": (r"whsec_[A-Za-z0-9+/=]{6,250}", "whsec_<base64> (Standard Webhooks)")}


class Branding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=100, pattern=_TEXT)
    support_email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
    logo_url: str | None = Field(default=None, max_length=500, pattern=r"^https://[^\s\x00]+$")


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str = Field(pattern=_HHMM)
    end: str = Field(pattern=_HHMM)


class AlertChannels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    webhook_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://[^\s\x00]+$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")


class TenantChange(BaseModel):
    """A partial update (PATCH semantics): only the fields given change; a secret set to null is removed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=_TEXT)
    retry_mode: Literal["own", "observe"] | None = None
    timezone: str | None = Field(default=None, max_length=64)
    branding: Branding | None = None
    alert_channels: AlertChannels | None = None
    quiet_hours: QuietHours | None = None
    raw_retention_days: int | None = Field(default=None, ge=1, le=3650)
    stripe_api_key: str | None = Field(default=None, min_length=8, max_length=255, pattern=r"^[A-Za-z0-9_]+$")
    stripe_webhook_secrets: list[str] | None = Field(default=None, max_length=5)
    alert_webhook_secret: str | None = Field(default=None, min_length=8, max_length=255, pattern=r"^[\x21-\x7e]+$")
    slack_webhook_url: str | None = Field(default=None, max_length=500, pattern=r"^https://[^\s\x00]+$")
    adyen_hmac_keys: list[str] | None = Field(default=None, max_length=5)
    adyen_webhook_basic_auth: str | None = Field(default=None, max_length=255, pattern=r"^[^:\s\x00]+:[\x21-\x7e]+$")
    adyen_api_key: str | None = Field(default=None, min_length=8, max_length=512, pattern=r"^[\x21-\x7e]+$")
    adyen_merchant_account: str | None = Field(default=None, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")
    braintree_merchant_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    braintree_public_key: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    braintree_private_key: str | None = Field(default=None, min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    paddle_webhook_secrets: list[str] | None = Field(default=None, max_length=5)
    generic_webhook_secrets: list[str] | None = Field(default=None, max_length=5)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and (value not in available_timezones() or ZoneInfo(value) is None):
            raise ValueError(f"not a time zone of the IANA database: {value!r}")
        return value

    @field_validator("stripe_webhook_secrets", "adyen_hmac_keys", "paddle_webhook_secrets", "generic_webhook_secrets")
    @classmethod
    def _secrets(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        form, looks = _LIST_FORMS[str(info.field_name)]
        for secret in value or []:
            if not re.fullmatch(form, secret):
                raise ValueError(f"each value looks like {looks}")
        return value

    def settings_changes(self) -> dict[str, Any]:
        """The fields kept in `tenants.settings` (plain, non-secret)."""
        given = self.model_dump(exclude_unset=True, mode="json")
        return {k: v for k, v in given.items() if k not in (*SECRET_FIELDS, "name", "retry_mode")}

    def secret_changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True)
        return {k: v for k, v in given.items() if k in SECRET_FIELDS}


def masked_secrets(secrets: dict[str, Any]) -> dict[str, Any]:
    """Secrets as answers show them: whether set, and a mask (`sk_test_…4242`)."""
    shown: dict[str, Any] = {}
    for name in SECRET_FIELDS:
        value = secrets.get(name)
        shown[name] = [mask(v) for v in value] if isinstance(value, list) else mask(value)
    return shown
