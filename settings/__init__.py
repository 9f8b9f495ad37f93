"""The bottom of the stack beside the store: the platform's settings (`settings.model`) and how every process logs
(`settings.logging`). Nothing here imports another layer."""

from settings.model import (
    ConfigError,
    OidcRule,
    Settings,
    env_name,
    environment,
    leaves,
    load_settings,
    masked,
)

__all__ = ["ConfigError", "OidcRule", "Settings", "env_name", "environment", "leaves", "load_settings", "masked"]
