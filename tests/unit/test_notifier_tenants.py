"""A tenant's own notification settings over the installation's (pure): quiet hours, default zone, alert channels,
and the branding of its emails."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from pydantic import SecretStr, ValidationError

from actors.notifier.policy import QuietHours, SendPolicy, next_send_time
from actors.notifier.tenants import AlertTargets, TenantNotifications, alert_targets, tenant_policy
from actors.planning import DEFAULT_BRANDING, tenant_branding

INSTALLATION = AlertTargets(slack_url=SecretStr("https://hooks.slack.test/install"),
                            webhook_url="https://alerts.install.test", webhook_secret=SecretStr("install-secret"))


def stored(settings: dict[str, object], **secrets: str) -> TenantNotifications:
    return TenantNotifications.from_stored(settings, secrets)


def test_a_tenant_that_set_nothing_keeps_the_installations_policy_and_channels() -> None:
    nothing = stored({})
    assert tenant_policy(SendPolicy(), nothing) == SendPolicy()
    assert alert_targets(INSTALLATION, nothing) is INSTALLATION
    assert alert_targets(INSTALLATION, None) is INSTALLATION


def test_a_tenants_quiet_hours_and_zone_replace_the_installations() -> None:
    policy = tenant_policy(SendPolicy(), stored({"quiet_hours": {"start": "12:00", "end": "14:00"},
                                                  "timezone": "Asia/Tokyo"}))
    assert policy.quiet_hours == QuietHours(start=time(12), end=time(14)) and policy.default_timezone == "Asia/Tokyo"
    noon_in_tokyo = datetime(2025, 3, 4, 3, 30, tzinfo=UTC)
    assert next_send_time(noon_in_tokyo, [], None, policy) == datetime(2025, 3, 4, 5, tzinfo=UTC)


def test_equal_start_and_end_mean_no_quiet_hours_at_all() -> None:
    policy = tenant_policy(SendPolicy(caps=()), stored({"quiet_hours": {"start": "00:00", "end": "00:00"}}))
    three_am_in_paris = datetime(2025, 3, 4, 2, tzinfo=UTC)
    assert next_send_time(three_am_in_paris, [], "Europe/Paris", policy) == three_am_in_paris


def test_an_unknown_stored_zone_is_ignored_rather_than_blocking_mail() -> None:
    assert stored({"timezone": "Mars/Olympus_Mons"}).timezone is None


def test_the_tenants_channels_replace_the_installations_as_soon_as_one_is_complete() -> None:
    slack_only = stored({}, slack_webhook_url="https://hooks.slack.test/acme")
    chosen = alert_targets(INSTALLATION, slack_only)
    assert (chosen.owner, chosen.names) == ("tenant", ["slack"])
    webhook = stored({"alert_channels": {"webhook_url": "https://acme.test/alerts", "email": "ops@acme.test"}},
                     alert_webhook_secret="acme-secret")
    assert alert_targets(INSTALLATION, webhook).names == ["webhook", "email"]


def test_a_webhook_url_without_its_secret_is_no_channel_so_the_installations_serve() -> None:
    half = stored({"alert_channels": {"webhook_url": "https://acme.test/alerts"}})
    assert half.alerts.names == [] and alert_targets(INSTALLATION, half) is INSTALLATION


def test_the_secrets_never_show_in_a_repr() -> None:
    shown = repr(stored({"alert_channels": {"webhook_url": "https://acme.test/a"}}, alert_webhook_secret="s3cr3t-x",
                        slack_webhook_url="https://hooks.slack.test/T000/B000/xyzzy"))
    assert "s3cr3t-x" not in shown and "xyzzy" not in shown


def test_a_stored_value_the_tenant_model_would_refuse_is_an_error() -> None:
    with pytest.raises(ValidationError):
        stored({"quiet_hours": {"start": "25:00", "end": "07:00"}})


def test_the_tenants_branding_names_its_emails_field_by_field_over_the_installations() -> None:
    merged = tenant_branding(DEFAULT_BRANDING, {"name": "Acme Widgets", "support_email": None, "logo_url": None})
    assert merged == {**DEFAULT_BRANDING, "name": "Acme Widgets"}
    assert tenant_branding(DEFAULT_BRANDING, None) == DEFAULT_BRANDING
    full = {"name": "Acme", "support_email": "help@acme.test", "logo_url": "https://acme.test/logo.png"}
    assert tenant_branding(DEFAULT_BRANDING, full) == full


def test_a_branding_the_emails_could_not_carry_falls_back_to_the_installations() -> None:
    refused = {"name": "Acme", "support_email": "Acme <help@acme.test>"}  # the notifier wants a bare address
    assert tenant_branding(DEFAULT_BRANDING, refused, "acme") == DEFAULT_BRANDING
