"""One settings model: every setting names its variable, `.env` is honoured for all, secrets never printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.notifier.sender import NotifierSettings
from actors.system import actor_config
from settings import ConfigError, Settings, environment, leaves, load_settings, masked

SECRETS = {
    "DATABASE_URL": "postgresql://app:pg-Secret-1@127.0.0.1:5432/payrisk",
    "REDIS_URL": "redis://:redis-Secret-2@127.0.0.1:6379/0",
    "STRIPE_API_KEY": "sk_test_stripe-Secret-3",
    "STRIPE_WEBHOOK_SECRET": "whsec_Secret-4,whsec_Secret-5",
    "SMTP_URL": "smtp://mailer:smtp-Secret-6@127.0.0.1:1025",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/slack-Secret-7",
    "ALERT_WEBHOOK_URL": "https://alerts.example.com/payrisk",
    "ALERT_WEBHOOK_SECRET": "alert-Secret-8",
    "PAYRISK_SECRET_KEY": "master-Secret-9-" + "x" * 32,
    "ADYEN_HMAC_KEYS": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
    "BRAINTREE_PRIVATE_KEY": "bt-Secret-10",
    "OIDC_CLIENT_SECRET": "oidc-Secret-11",
}


def test_every_setting_names_its_own_environment_variable() -> None:
    names = [str((info.json_schema_extra or {}).get("env")) for _, _, info in leaves()]  # type: ignore[union-attr]
    assert all(name and name != "None" for name in names)
    assert len(names) == len(set(names)), "two settings share a variable"


def test_the_alert_and_mail_settings_in_dot_env_reach_the_notifier(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T/B/x\nALERT_WEBHOOK_URL=https://a.example\n"
                      "ALERT_WEBHOOK_SECRET=s3cret\nSMTP_URL=smtp://127.0.0.1:2525\nMAIL_FROM=Billing <b@acme.test>\n")
    settings = load_settings(environ={}, dotenv=dotenv)
    notifier = NotifierSettings.from_config(actor_config(settings)["notifier"])
    assert notifier.slack_webhook_url is not None
    assert notifier.slack_webhook_url.get_secret_value() == "https://hooks.slack.com/services/T/B/x"
    assert notifier.webhook_url == "https://a.example" and notifier.smtp is not None
    assert notifier.smtp.port == 2525 and notifier.sender_address == "b@acme.test"


def test_overrides_beat_the_environment_which_beats_dot_env(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PAYRISK_SHARDS=3\nPAYRISK_WORKERS=2\nPAYRISK_PORT=9001\n")
    settings = load_settings(environ={"PAYRISK_SHARDS": "4", "PAYRISK_WORKERS": "5"}, dotenv=dotenv, shards=6)
    assert (settings.ray.shards, settings.gateway.workers, settings.gateway.port) == (6, 5, 9001)


def test_the_environment_a_child_process_gets_reproduces_the_settings() -> None:
    settings = load_settings(environ={**SECRETS, "PAYRISK_SHARDS": "3", "PAYRISK_FAULT_DROP_HANDOFF": "true",
                                      "OIDC_ISSUER": "http://127.0.0.1:1", "OIDC_CLIENT_ID": "payrisk",
                                      "OIDC_MAPPING": '[{"email_domain": "acme.test", "tenant": "acme", '
                                                      '"role": "admin"}]'}, dotenv=None)
    assert load_settings(environ=environment(settings), dotenv=None) == settings


def test_config_check_output_holds_no_secret() -> None:
    shown = str(masked(load_settings(environ=SECRETS, dotenv=None)))
    for value in SECRETS.values():
        for part in value.split(","):
            if "Secret" in part:
                assert part not in shown
    assert "<set>" in shown


@pytest.mark.parametrize(("name", "value"), [("PAYRISK_PORT", "abc"), ("DATABASE_URL", "mysql://x"),
                                             ("PAYRISK_LOG_FORMAT", "xml"), ("ALERT_WEBHOOK_URL", "https://a.test")])
def test_a_bad_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match="ALERT_WEBHOOK_SECRET" if name == "ALERT_WEBHOOK_URL" else name):
        load_settings(environ={name: value}, dotenv=None)


def test_replace_validates_and_refuses_an_unknown_name() -> None:
    settings = load_settings(environ={}, dotenv=None)
    changed = settings.replace(sweep_interval_seconds=0.5, database_url="postgresql://x@h/db")
    assert (changed.gateway.sweep_interval_seconds, changed.database.url) == (0.5, "postgresql://x@h/db")
    with pytest.raises(ConfigError, match="unknown setting"):
        settings.replace(sweep_intervall=1)
    with pytest.raises(ConfigError, match="PAYRISK_SHARDS"):
        settings.replace(shards=0)
    assert isinstance(settings, Settings)


def _config_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payrisk.cli", "config", "check"], env={"PATH": "/usr/bin", **env},
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_payrisk_config_check_prints_masked_settings_and_fails_on_a_bad_one(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    good = _config_check({**SECRETS, "PYTHONPATH": root}, tmp_path)
    assert good.returncode == 0, good.stderr
    assert "STRIPE_API_KEY" in good.stdout and "sk_test_stripe-Secret-3" not in good.stdout + good.stderr
    bad = _config_check({"PYTHONPATH": root, "SMTP_URL": "ftp://mail.example"}, tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("payrisk: error: invalid setting SMTP_URL")
    assert len(bad.stderr.strip().splitlines()) == 1


async def test_the_installation_branding_setting_signs_the_emails_of_tenants_without_their_own() -> None:
    from datetime import UTC, datetime

    from actors.planning import make_context_factory

    config = actor_config(load_settings(environ={"PAYRISK_BRAND_NAME": "Acme Billing",
                                                 "PAYRISK_SUPPORT_EMAIL": "help@acme.test"}, dotenv=None),
                          planner="default")
    build = make_context_factory(config)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    plain = await build("t-plain", now, {}, frozenset(), "own")
    own = await build("t-own", now, {}, frozenset(), "own", {"name": "Own Brand"})
    assert (plain.branding["name"], plain.branding["support_email"]) == ("Acme Billing", "help@acme.test")
    assert (own.branding["name"], own.branding["support_email"]) == ("Own Brand", "help@acme.test")
    with pytest.raises(ConfigError, match="PAYRISK_SUPPORT_EMAIL"):
        load_settings(environ={"PAYRISK_SUPPORT_EMAIL": "not an address"}, dotenv=None)
