"""Settings from the environment (and `.env`), validated once at start.

A bad setting stops start-up with one line naming the setting (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the setting."""


class OidcRule(BaseModel):
    """One line of `OIDC_MAPPING`: people in `group`, with `email`, or whose email ends in `@email_domain`, sign
    in to `tenant` with `role`; `platform` ones may act across tenants (recorded). The first match wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    group: str | None = None
    email: str | None = None
    email_domain: str | None = None
    tenant: str = Field(min_length=1)
    role: Literal["viewer", "operator", "admin"]
    platform: bool = False

    @model_validator(mode="after")
    def _one_condition(self) -> OidcRule:
        if sum(x is not None for x in (self.group, self.email, self.email_domain)) != 1:
            raise ValueError("each rule names exactly one of group, email, email_domain")
        return self


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "payrisk"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = None  # None: start an embedded PostgreSQL
    redis_url: str | None = None  # None: start an embedded Redis
    ray_address: str | None = None  # None: start a local Ray bound to 127.0.0.1
    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    dashboard_port: int = Field(default=8265, ge=0, le=65535)
    shards: int = Field(default=2, ge=1, le=256)
    virtual_shards: int = Field(default=256, ge=1, le=65536)
    classifiers: int = Field(default=1, ge=1, le=64)
    notifiers: int = Field(default=1, ge=1, le=64)
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_tolerance_seconds: int = Field(default=300, ge=1)
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    #: Adyen (docs/PROVIDERS.md): hex HMAC keys of the Standard webhook (several while rotating), optional Basic
    #: auth `user:password`, and the Checkout API key, merchant account and base address for retries
    adyen_hmac_keys: tuple[str, ...] = ()
    adyen_webhook_basic_auth: str | None = None
    adyen_api_key: str | None = None
    adyen_merchant_account: str | None = None
    adyen_api_base: str | None = None  # e.g. https://checkout-test.adyen.com/v71; the simulator's in tests
    braintree_merchant_id: str | None = None
    braintree_public_key: str | None = None
    braintree_private_key: str | None = None
    braintree_environment: Literal["sandbox", "production"] = "sandbox"
    braintree_api_base: str | None = None  # http(s)://host:port standing in for Braintree's gateway
    paddle_webhook_secrets: tuple[str, ...] = ()
    paddle_tolerance_seconds: int = Field(default=5, ge=1)
    generic_webhook_secrets: tuple[str, ...] = ()
    generic_tolerance_seconds: int = Field(default=300, ge=1)
    #: how soon a waiting case retries after the customer updated their card
    card_update_retry_seconds: float = Field(default=60.0, ge=0, le=86400)
    #: decline details with no id join an invoice failure of the same customer, amount and currency this close
    join_window_seconds: float = Field(default=600.0, ge=0, le=86400)
    #: the last resort: classify a failure with whatever details arrived after this long
    classify_wait_seconds: float = Field(default=120.0, gt=0, le=86400)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: a client must send its request headers / its whole body within these (slowloris protection)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    body_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    #: open connections per gateway process beyond which new requests get 503 (uvicorn limit_concurrency)
    max_connections: int = Field(default=1000, ge=8, le=100_000)
    smtp_url: str | None = None
    mail_from: str = "billing@payrisk.local"
    group_commit_ms: float = Field(default=2.0, ge=0.0, le=100.0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_grace_seconds: float = Field(default=30.0, ge=0)
    #: fault injection for tests: drop every hand-off after commit, as if the process died right there
    fault_drop_handoff: bool = False
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    metrics_interval_seconds: float = Field(default=15.0, ge=0)
    grafana_host: str | None = None
    prometheus_host: str | None = None
    #: master keys for secrets at rest and session cookies, current first (rotation: `new,old`)
    secret_keys: tuple[str, ...] = ()
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_redirect_url: str | None = None  # None: {this gateway's URL}/auth/callback
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = "groups"
    oidc_mapping: tuple[OidcRule, ...] = ()
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    raw_retention_days: int | None = Field(default=None, ge=1, le=3650)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("adyen_hmac_keys")
    @classmethod
    def _check_adyen_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) % 2 or any(c not in "0123456789abcdefABCDEF" for c in key) for key in value):
            raise ValueError("each key is the hexadecimal HMAC key from the Adyen Customer Area")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _check_secret_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < 32 for key in value):
            raise ValueError("every key needs at least 32 characters (secrets.token_urlsafe(48) makes one)")
        return value

    @model_validator(mode="after")
    def _check_oidc(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("OIDC_ISSUER needs OIDC_CLIENT_ID")
        if self.oidc_issuer and not self.secret_keys:
            raise ValueError("OIDC sign-in needs PAYRISK_SECRET_KEY (it signs the session cookie)")
        return self

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgres", "postgresql"):
            raise ValueError("must look like postgresql://user@host:port/dbname")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must look like redis://host:port/0 or unix:///path/redis.sock")
        return value


#: environment variable → field
_ENV = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "RAY_ADDRESS": "ray_address",
    "PAYRISK_DATA_DIR": "data_dir",
    "PAYRISK_HOST": "host",
    "PAYRISK_PORT": "port",
    "PAYRISK_WORKERS": "workers",
    "PAYRISK_DASHBOARD_PORT": "dashboard_port",
    "PAYRISK_SHARDS": "shards",
    "PAYRISK_VIRTUAL_SHARDS": "virtual_shards",
    "PAYRISK_CLASSIFIERS": "classifiers",
    "PAYRISK_NOTIFIERS": "notifiers",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secrets",
    "STRIPE_WEBHOOK_TOLERANCE": "stripe_tolerance_seconds",
    "STRIPE_API_KEY": "stripe_api_key",
    "STRIPE_API_BASE": "stripe_api_base",
    "ADYEN_HMAC_KEYS": "adyen_hmac_keys",
    "ADYEN_WEBHOOK_BASIC_AUTH": "adyen_webhook_basic_auth",
    "ADYEN_API_KEY": "adyen_api_key",
    "ADYEN_MERCHANT_ACCOUNT": "adyen_merchant_account",
    "ADYEN_API_BASE": "adyen_api_base",
    "BRAINTREE_MERCHANT_ID": "braintree_merchant_id",
    "BRAINTREE_PUBLIC_KEY": "braintree_public_key",
    "BRAINTREE_PRIVATE_KEY": "braintree_private_key",
    "BRAINTREE_ENVIRONMENT": "braintree_environment",
    "BRAINTREE_API_BASE": "braintree_api_base",
    "PADDLE_WEBHOOK_SECRETS": "paddle_webhook_secrets",
    "PADDLE_WEBHOOK_TOLERANCE": "paddle_tolerance_seconds",
    "GENERIC_WEBHOOK_SECRETS": "generic_webhook_secrets",
    "GENERIC_WEBHOOK_TOLERANCE": "generic_tolerance_seconds",
    "PAYRISK_CARD_UPDATE_RETRY_SECONDS": "card_update_retry_seconds",
    "PAYRISK_JOIN_WINDOW_SECONDS": "join_window_seconds",
    "PAYRISK_CLASSIFY_WAIT_SECONDS": "classify_wait_seconds",
    "PAYRISK_MAX_BODY_BYTES": "max_body_bytes",
    "PAYRISK_HEADER_TIMEOUT": "header_timeout_seconds",
    "PAYRISK_BODY_TIMEOUT": "body_timeout_seconds",
    "PAYRISK_MAX_CONNECTIONS": "max_connections",
    "SMTP_URL": "smtp_url",
    "MAIL_FROM": "mail_from",
    "PAYRISK_GROUP_COMMIT_MS": "group_commit_ms",
    "PAYRISK_SWEEP_INTERVAL": "sweep_interval_seconds",
    "PAYRISK_SWEEP_GRACE": "sweep_grace_seconds",
    "PAYRISK_FAULT_DROP_HANDOFF": "fault_drop_handoff",
    "PAYRISK_LOG_LEVEL": "log_level",
    "PAYRISK_LOG_FORMAT": "log_format",
    "PAYRISK_METRICS_INTERVAL": "metrics_interval_seconds",
    "RAY_GRAFANA_HOST": "grafana_host",
    "RAY_PROMETHEUS_HOST": "prometheus_host",
    "PAYRISK_SECRET_KEY": "secret_keys",
    "OIDC_ISSUER": "oidc_issuer",
    "OIDC_CLIENT_ID": "oidc_client_id",
    "OIDC_CLIENT_SECRET": "oidc_client_secret",
    "OIDC_REDIRECT_URL": "oidc_redirect_url",
    "OIDC_SCOPES": "oidc_scopes",
    "OIDC_GROUPS_CLAIM": "oidc_groups_claim",
    "OIDC_MAPPING": "oidc_mapping",
    "PAYRISK_SESSION_TTL": "session_ttl_seconds",
    "PAYRISK_RAW_RETENTION_DAYS": "raw_retention_days",
    "PAYRISK_RETENTION_INTERVAL": "retention_interval_seconds",
}
_FIELD_TO_ENV = {field: env for env, field in _ENV.items()}


def load_settings(environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env"), **overrides: object
                  ) -> Settings:
    """Build settings from `.env`, then the environment, then explicit overrides (CLI flags)."""
    values: dict[str, object] = {}
    if dotenv is not None and dotenv.is_file():
        from dotenv import dotenv_values

        values.update(_from_env({k: v for k, v in dotenv_values(dotenv).items() if v is not None}))
    values.update(_from_env(dict(os.environ) if environ is None else environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _from_env(environ: dict[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for env, field in _ENV.items():
        raw = environ.get(env)
        if raw is None or raw == "":
            continue
        if field in ("stripe_webhook_secrets", "secret_keys", "adyen_hmac_keys", "paddle_webhook_secrets",
                     "generic_webhook_secrets"):
            values[field] = tuple(s.strip() for s in raw.split(",") if s.strip())
        elif field == "oidc_mapping":
            values[field] = _json_setting(env, raw)
        else:
            values[field] = raw
    return values


def _json_setting(env: str, raw: str) -> object:
    import json

    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid setting {env}: not JSON ({exc})") from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "settings"
    name = _FIELD_TO_ENV.get(field, field)
    return f"invalid setting {name}: {error['msg']}"
