"""The platform's settings: one pydantic-settings model, read once at start from the environment and `.env`.

Every setting belongs to a group (`settings.database.url`, `settings.stripe.api_key`, `settings.alerts.webhook_url`)
and names its environment variable on the field (`validation_alias`), so the model *is* the list of settings — there
is no second table. Precedence: explicit overrides (CLI flags, tests) > the environment > `.env` > defaults.
Overrides and `Settings.replace` take a *flat name*: `{group}_{field}` (`database_url`, `stripe_api_key`) or a
field's own name when only one group has it (`shards`, `sweep_interval_seconds`).

A bad setting stops start-up with one line naming the environment variable (`ConfigError`), never a traceback.
Secrets are marked on their fields (`secret=True`); `masked()` is what may be printed (`payrisk config check`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the setting."""


def _env(name: str, default: Any = None, *, secret: bool = False, listed: bool = False, **kwargs: Any) -> Any:
    """A field read from environment variable `name`; `listed`: comma-separated values; `secret`: masked."""
    extra: JsonDict = {"env": name, "secret": secret, "listed": listed}
    if "default_factory" in kwargs:
        return Field(validation_alias=name, json_schema_extra=extra, **kwargs)
    return Field(default, validation_alias=name, json_schema_extra=extra, **kwargs)


class Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


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


class DatabaseSettings(Group):
    url: str | None = _env("DATABASE_URL", secret=True)  # None: start an embedded PostgreSQL

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgres", "postgresql"):
            raise ValueError("must look like postgresql://user@host:port/dbname")
        return value


class RedisSettings(Group):
    url: str | None = _env("REDIS_URL", secret=True)  # None: start an embedded Redis

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must look like redis://host:port/0 or unix:///path/redis.sock")
        return value


class RaySettings(Group):
    address: str | None = _env("RAY_ADDRESS")  # None: start a local Ray bound to 127.0.0.1
    dashboard_port: int = _env("PAYRISK_DASHBOARD_PORT", 8265, ge=0, le=65535)
    shards: int = _env("PAYRISK_SHARDS", 2, ge=1, le=256)
    virtual_shards: int = _env("PAYRISK_VIRTUAL_SHARDS", 256, ge=1, le=65536)
    classifiers: int = _env("PAYRISK_CLASSIFIERS", 1, ge=1, le=64)
    notifiers: int = _env("PAYRISK_NOTIFIERS", 1, ge=1, le=64)
    #: the nice value of the Ray workers a local Ray starts (Ray's own default is 15): 0 gives the shards the
    #: gateway's priority (decisions keep up, the 2xx waits longer under saturation); higher favours the 2xx and
    #: lets decisions fall behind (docs/BENCHMARKS.md, "Worker priority")
    worker_niceness: int = _env("PAYRISK_RAY_WORKER_NICENESS", 0, ge=0, le=19)
    grafana_host: str | None = _env("RAY_GRAFANA_HOST")
    prometheus_host: str | None = _env("RAY_PROMETHEUS_HOST")


class GatewaySettings(Group):
    host: str = _env("PAYRISK_HOST", "127.0.0.1")
    port: int = _env("PAYRISK_PORT", 8000, ge=0, le=65535)
    workers: int = _env("PAYRISK_WORKERS", 1, ge=1, le=64)
    max_body_bytes: int = _env("PAYRISK_MAX_BODY_BYTES", 1024 * 1024, ge=1024)
    #: a client must send its request headers / its whole body within these (slowloris protection)
    header_timeout_seconds: float = _env("PAYRISK_HEADER_TIMEOUT", 10.0, gt=0, le=600)
    body_timeout_seconds: float = _env("PAYRISK_BODY_TIMEOUT", 15.0, gt=0, le=600)
    #: open connections per gateway process beyond which new requests get 503 (uvicorn limit_concurrency)
    max_connections: int = _env("PAYRISK_MAX_CONNECTIONS", 1000, ge=8, le=100_000)
    group_commit_ms: float = _env("PAYRISK_GROUP_COMMIT_MS", 1.0, ge=0.0, le=100.0)
    #: generation-0 collector threshold of the gateway workers and the actors (read by settings/process.py)
    gc_threshold: int = _env("PAYRISK_GC_THRESHOLD", 20_000, ge=0, le=10_000_000)
    sweep_interval_seconds: float = _env("PAYRISK_SWEEP_INTERVAL", 5.0, gt=0)
    sweep_grace_seconds: float = _env("PAYRISK_SWEEP_GRACE", 30.0, ge=0)
    #: fault injection for tests: drop every hand-off after commit, as if the process died right there
    fault_drop_handoff: bool = _env("PAYRISK_FAULT_DROP_HANDOFF", False)


class StripeSettings(Group):
    webhook_secrets: tuple[str, ...] = _env("STRIPE_WEBHOOK_SECRET", (), secret=True, listed=True)
    tolerance_seconds: int = _env("STRIPE_WEBHOOK_TOLERANCE", 300, ge=1)
    api_key: str | None = _env("STRIPE_API_KEY", secret=True)
    api_base: str | None = _env("STRIPE_API_BASE")


class AdyenSettings(Group):
    """docs/PROVIDERS.md: hex HMAC keys of the Standard webhook (several while rotating), optional Basic auth
    `user:password`, and the Checkout API key, merchant account and base address for retries."""

    hmac_keys: tuple[str, ...] = _env("ADYEN_HMAC_KEYS", (), secret=True, listed=True)
    webhook_basic_auth: str | None = _env("ADYEN_WEBHOOK_BASIC_AUTH", secret=True)
    api_key: str | None = _env("ADYEN_API_KEY", secret=True)
    merchant_account: str | None = _env("ADYEN_MERCHANT_ACCOUNT")
    api_base: str | None = _env("ADYEN_API_BASE")  # e.g. https://checkout-test.adyen.com/v71

    @field_validator("hmac_keys")
    @classmethod
    def _check_hmac_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) % 2 or any(c not in "0123456789abcdefABCDEF" for c in key) for key in value):
            raise ValueError("each key is the hexadecimal HMAC key from the Adyen Customer Area")
        return value


class BraintreeSettings(Group):
    merchant_id: str | None = _env("BRAINTREE_MERCHANT_ID")
    public_key: str | None = _env("BRAINTREE_PUBLIC_KEY")
    private_key: str | None = _env("BRAINTREE_PRIVATE_KEY", secret=True)
    environment: Literal["sandbox", "production"] = _env("BRAINTREE_ENVIRONMENT", "sandbox")
    api_base: str | None = _env("BRAINTREE_API_BASE")  # http(s)://host:port standing in for Braintree's gateway


class PaddleSettings(Group):
    webhook_secrets: tuple[str, ...] = _env("PADDLE_WEBHOOK_SECRETS", (), secret=True, listed=True)
    tolerance_seconds: int = _env("PADDLE_WEBHOOK_TOLERANCE", 5, ge=1)


class GenericSettings(Group):
    webhook_secrets: tuple[str, ...] = _env("GENERIC_WEBHOOK_SECRETS", (), secret=True, listed=True)
    tolerance_seconds: int = _env("GENERIC_WEBHOOK_TOLERANCE", 300, ge=1)


class RecoverySettings(Group):
    #: how soon a waiting case retries after the customer updated their card
    card_update_retry_seconds: float = _env("PAYRISK_CARD_UPDATE_RETRY_SECONDS", 60.0, ge=0, le=86400)
    #: decline details with no id join an invoice failure of the same customer, amount and currency this close
    join_window_seconds: float = _env("PAYRISK_JOIN_WINDOW_SECONDS", 600.0, ge=0, le=86400)
    #: the last resort: classify a failure with whatever details arrived after this long
    classify_wait_seconds: float = _env("PAYRISK_CLASSIFY_WAIT_SECONDS", 120.0, gt=0, le=86400)


class SmtpSettings(Group):
    """Customer emails. No URL: emails fail and are retried until one is set."""

    url: str | None = _env("SMTP_URL", secret=True)  # smtp[s]://user:password@host:port
    mail_from: str = _env("MAIL_FROM", "billing@payrisk.local")


class BrandingSettings(Group):
    """How the installation's customer emails are signed; a tenant's own branding wins field by field."""

    name: str = _env("PAYRISK_BRAND_NAME", "payrisk", min_length=1, max_length=100)
    support_email: str = _env("PAYRISK_SUPPORT_EMAIL", "support@payrisk.local", pattern=r"^[^@\s]+@[^@\s]+$")
    logo_url: str | None = _env("PAYRISK_BRAND_LOGO_URL", pattern=r"^https://")


class AlertSettings(Group):
    """The installation's engineering alert channels (a tenant may set its own). None: alerts are `no_channel`."""

    slack_webhook_url: str | None = _env("SLACK_WEBHOOK_URL", secret=True)  # Slack's URL is itself the credential
    webhook_url: str | None = _env("ALERT_WEBHOOK_URL")
    webhook_secret: str | None = _env("ALERT_WEBHOOK_SECRET", secret=True)

    @model_validator(mode="after")
    def _signed(self) -> AlertSettings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("ALERT_WEBHOOK_SECRET is required when ALERT_WEBHOOK_URL is set")
        return self


class AuthSettings(Group):
    #: master keys for secrets at rest and session cookies, current first (rotation: `new,old`)
    secret_keys: tuple[str, ...] = _env("PAYRISK_SECRET_KEY", (), secret=True, listed=True)
    oidc_issuer: str | None = _env("OIDC_ISSUER")
    oidc_client_id: str | None = _env("OIDC_CLIENT_ID")
    oidc_client_secret: str | None = _env("OIDC_CLIENT_SECRET", secret=True)
    oidc_redirect_url: str | None = _env("OIDC_REDIRECT_URL")  # None: {this gateway's URL}/auth/callback
    oidc_scopes: str = _env("OIDC_SCOPES", "openid email profile")
    oidc_groups_claim: str = _env("OIDC_GROUPS_CLAIM", "groups")
    oidc_mapping: tuple[OidcRule, ...] = _env("OIDC_MAPPING", ())  # JSON list of rules
    session_ttl_seconds: int = _env("PAYRISK_SESSION_TTL", 8 * 3600, ge=60, le=30 * 86400)

    @field_validator("secret_keys")
    @classmethod
    def _check_secret_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < 32 for key in value):
            raise ValueError("every key needs at least 32 characters (secrets.token_urlsafe(48) makes one)")
        return value

    @model_validator(mode="after")
    def _check_oidc(self) -> AuthSettings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("OIDC_ISSUER needs OIDC_CLIENT_ID")
        if self.oidc_issuer and not self.secret_keys:
            raise ValueError("OIDC sign-in needs PAYRISK_SECRET_KEY (it signs the session cookie)")
        return self


class PrivacySettings(Group):
    raw_retention_days: int | None = _env("PAYRISK_RAW_RETENTION_DAYS", ge=1, le=3650)
    retention_interval_seconds: float = _env("PAYRISK_RETENTION_INTERVAL", 3600.0, gt=0)


class LoggingSettings(Group):
    level: str = _env("PAYRISK_LOG_LEVEL", "info")
    format: str = _env("PAYRISK_LOG_FORMAT", "json", pattern="^(json|console)$")
    metrics_interval_seconds: float = _env("PAYRISK_METRICS_INTERVAL", 15.0, ge=0)


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "payrisk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    data_dir: Path = _env("PAYRISK_DATA_DIR", default_factory=_default_data_dir)
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    ray: RaySettings = RaySettings()
    gateway: GatewaySettings = GatewaySettings()
    stripe: StripeSettings = StripeSettings()
    adyen: AdyenSettings = AdyenSettings()
    braintree: BraintreeSettings = BraintreeSettings()
    paddle: PaddleSettings = PaddleSettings()
    generic: GenericSettings = GenericSettings()
    recovery: RecoverySettings = RecoverySettings()
    smtp: SmtpSettings = SmtpSettings()
    branding: BrandingSettings = BrandingSettings()
    alerts: AlertSettings = AlertSettings()
    auth: AuthSettings = AuthSettings()
    privacy: PrivacySettings = PrivacySettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ, dotenv = _SOURCES.get()
        return (init_settings, NamedEnvSource(settings_cls, environ),
                NamedEnvSource(settings_cls, _read_dotenv(dotenv)))

    def replace(self, **flat: object) -> Settings:
        """A copy with some settings changed, by flat name (`database_url=…`, `sweep_interval_seconds=…`),
        validated like the originals."""
        values = self.model_dump()
        for (group, field), value in _route(flat).items():
            if group is None:
                values[field] = value
            else:
                values[group] = {**values[group], field: value}
        return _validated(values)


# -- where values come from ---------------------------------------------------------------------------------------

#: (environment, .env path) the next `Settings()` reads; `load_settings` sets it for one construction
_SOURCES: ContextVar[tuple[Mapping[str, str], Path | None]] = ContextVar(
    "payrisk_settings_sources", default=(os.environ, Path(".env")))


def leaves() -> Iterator[tuple[str | None, str, FieldInfo]]:
    """Every setting as (group or None, field, its FieldInfo), in declaration order."""
    for name, info in Settings.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, Group):
            for field, sub in kind.model_fields.items():
                yield name, field, sub
        else:
            yield None, name, info


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


class NamedEnvSource(PydanticBaseSettingsSource):
    """Values from a mapping of environment variables, each found under the name its field declares."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every leaf at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for group, field, info in leaves():
            extra = _extra(info)
            raw = self._environ.get(str(extra.get("env")))
            if raw is None or raw == "":
                continue
            value = _parse(str(extra["env"]), raw, info, bool(extra.get("listed")))
            if group is None:
                values[field] = value
            else:
                values.setdefault(group, {})[field] = value
        return values


def _parse(env: str, raw: str, info: FieldInfo, listed: bool) -> object:
    if listed:
        return tuple(s.strip() for s in raw.split(",") if s.strip())
    if "OidcRule" in str(info.annotation):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid setting {env}: not JSON ({exc})") from None
    return raw


def _read_dotenv(path: Path | None) -> Mapping[str, str]:
    if path is None or not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _flat_names() -> dict[str, tuple[str | None, str]]:
    """flat name → (group, field): `{group}_{field}` always; the bare field name when no other group has it."""
    names: dict[str, tuple[str | None, str]] = {}
    counts: dict[str, int] = {}
    for _group, field, _ in leaves():
        counts[field] = counts.get(field, 0) + 1
    for group, field, _ in leaves():
        if group is not None:
            names[f"{group}_{field}"] = (group, field)
        if counts[field] == 1:
            names[field] = (group, field)
    return names


def _route(flat: Mapping[str, object]) -> dict[tuple[str | None, str], object]:
    names = _flat_names()
    unknown = sorted(set(flat) - set(names))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}")
    return {names[key]: value for key, value in flat.items()}


def env_name(group: str | None, field: str) -> str:
    """The environment variable of a setting."""
    info = (Settings.model_fields[field] if group is None
            else Settings.model_fields[group].annotation.model_fields[field])  # type: ignore[union-attr]
    return str(_extra(info).get("env", field))


def _validated(values: dict[str, Any]) -> Settings:
    try:
        token = _SOURCES.set(({}, None))  # only the values given: no environment underneath
        try:
            return Settings(**values)
        finally:
            _SOURCES.reset(token)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"),
                  **overrides: object) -> Settings:
    """Build settings from `.env`, then the environment, then explicit overrides by flat name (CLI flags)."""
    nested: dict[str, Any] = {}
    for (group, field), value in _route({k: v for k, v in overrides.items() if v is not None}).items():
        if group is None:
            nested[field] = value
        else:
            nested.setdefault(group, {})[field] = value
    token = _SOURCES.set((os.environ if environ is None else environ, dotenv))
    try:
        return Settings(**nested)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _SOURCES.reset(token)


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    group = loc[0] if len(loc) > 1 and loc[0] in Settings.model_fields else None
    field = loc[1] if group else (loc[0] if loc else "settings")
    try:
        name = env_name(group, field) if field in _field_names(group) else env_name(None, group or field)
    except (KeyError, AttributeError):
        name = ".".join(loc) or "settings"
    if group and field not in _field_names(group):  # a group-level rule (e.g. the OIDC pair)
        return f"invalid settings ({group}): {error['msg'].removeprefix('Value error, ')}"
    return f"invalid setting {name}: {error['msg'].removeprefix('Value error, ')}"


def _field_names(group: str | None) -> set[str]:
    if group is None:
        return set(Settings.model_fields)
    kind = Settings.model_fields[group].annotation
    return set(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else set()


def masked(settings: Settings) -> dict[str, dict[str, object]]:
    """Every effective setting by environment variable, grouped, secrets shown as `set` / `unset` only."""
    shown: dict[str, dict[str, object]] = {}
    for group, field, info in leaves():
        value = getattr(getattr(settings, group) if group else settings, field)
        extra = _extra(info)
        if extra.get("secret"):
            value = "<set>" if value not in (None, "", ()) else None
        elif isinstance(value, tuple):
            value = [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
        elif isinstance(value, Path):
            value = str(value)
        shown.setdefault(group or "platform", {})[str(extra.get("env", field))] = value
    return shown


def environment(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that would produce them (for child processes), unset ones left
    out. Contains secrets: for a child's environment only, never for printing (see `masked`)."""
    env: dict[str, str] = {}
    for group, field, info in leaves():
        value = getattr(getattr(settings, group) if group else settings, field)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            text = (json.dumps([v.model_dump(exclude_none=True) for v in value])
                    if value and isinstance(value[0], BaseModel) else ",".join(map(str, value)))
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
        env[str(_extra(info).get("env", field))] = text
    return env
