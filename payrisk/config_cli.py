"""`payrisk config check`: the effective settings (environment over `.env` over defaults), secrets masked.

Exit 0 when every setting is valid; a bad one prints one line naming it and exits 2 (as every command does).
"""

from __future__ import annotations

import argparse
import json

from settings import ConfigError, load_settings, masked


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings()
    _check_notifier(settings)
    shown = masked(settings)
    if args.json:
        print(json.dumps({"ok": True, "settings": shown}, indent=2, default=str))
        return 0
    for group, values in shown.items():
        print(f"[{group}]")
        for name, value in values.items():
            print(f"  {name:<36} {_text(value)}")
    print("settings ok")
    return 0


def _check_notifier(settings: object) -> None:
    """SMTP_URL and MAIL_FROM are parsed by the notifier: check them the same way here."""
    from actors.notifier.errors import NotifierConfigError
    from actors.notifier.sender import NotifierSettings
    from actors.system import notifier_config

    try:
        NotifierSettings.from_config(notifier_config(settings))  # type: ignore[arg-type]
    except NotifierConfigError as exc:
        raise ConfigError(f"invalid setting {exc}") from None


def _text(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(map(str, value)) if value and not isinstance(value[0], dict) else json.dumps(value)
    return str(value)
