"""Dunning email content and SMTP settings: templates, branding, links, amounts, clear config errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import pytest
from aiosmtplib.email import flatten_message
from pydantic import ValidationError

from actors.notifier.email import SmtpSettings, build_message, parse_mail_from, render
from actors.notifier.errors import NotifierConfigError
from actors.notifier.messages import EmailPayload, Template, format_amount
from actors.notifier.sender import NotifierSettings

LINK = "https://invoice.stripe.com/i/acct_1/test_YWNjdF8x"


def payload(**overrides: Any) -> EmailPayload:
    data: dict[str, Any] = {
        "template": "action_required",
        "to": "ada@example.com",
        "customer_id": "cus_1",
        "customer_name": "Ada Lovelace",
        "invoice_id": "in_1",
        "amount_due": 123456,
        "currency": "usd",
        "hosted_invoice_url": LINK,
        "next_attempt_at": "2025-03-10T15:00:00+00:00",
        "timezone": "Europe/Paris",
        "branding": {
            "name": "Acme Cloud",
            "support_email": "help@acme.test",
            "logo_url": "https://acme.test/l.png",
        },
    }
    return EmailPayload.model_validate({**data, **overrides})


@pytest.mark.parametrize("template", list(Template))
def test_every_template_renders_the_branding_the_amount_and_the_hosted_link(template: Template) -> None:
    subject, text, html = render(payload(template=template.value))
    assert "Acme Cloud" in subject and "$1,234.56" in subject
    for body in (text, html):
        assert "Ada Lovelace" in body and "$1,234.56" in body and "help@acme.test" in body and LINK in body
    assert 'src="https://acme.test/l.png"' in html


def test_the_retry_date_is_shown_in_the_customers_time_zone() -> None:
    _, text, _ = render(payload(template="payment_failed"))
    assert "Monday 10 March 2025, 16:00 CET" in text


def test_without_a_hosted_link_the_email_has_no_button_but_still_names_support() -> None:
    _, text, html = render(
        payload(hosted_invoice_url=None, branding={"name": "Acme", "support_email": "h@a.test"})
    )
    assert "<a href" not in html.replace('<a href="mailto:h@a.test"', "")
    assert "h@a.test" in text and "<strong" in html  # the brand name stands in for the missing logo


def test_customer_supplied_text_is_escaped_in_html() -> None:
    _, _, html = render(payload(customer_name="<script>alert(1)</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_javascript_link_is_rejected_before_rendering() -> None:
    with pytest.raises(ValidationError):
        payload(hosted_invoice_url="javascript:alert(1)")


def test_the_message_carries_the_deterministic_id_branding_and_both_parts() -> None:
    now = datetime(2025, 3, 4, 12, tzinfo=UTC)
    message = build_message(
        payload(),
        mail_from="billing@payrisk.test",
        message_id="<payrisk.abc@payrisk.test>",
        key="k1",
        now=now,
    )
    assert message["Message-ID"] == "<payrisk.abc@payrisk.test>"
    assert message["From"] == "Acme Cloud <billing@payrisk.test>"
    assert message["Reply-To"] == "help@acme.test"
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.get_payload()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("name", ["Ada Lovelace", "Zoë Ådams-Łukasiewicz", "山田 太郎"])
def test_the_message_reads_back_as_rendered_with_non_ascii_names_and_amounts(name: str) -> None:
    """What a mail client sees: the headers decoded and both parts exactly as rendered, whatever the script."""
    sent = payload(customer_name=name, currency="eur", branding={"name": "Café Ünïcode", "support_email": "h@c.test"})
    message = build_message(sent, mail_from="billing@payrisk.test", message_id="<m@payrisk.test>", key="k1",
                            now=datetime(2025, 3, 4, 12, tzinfo=UTC))
    read = message_from_bytes(flatten_message(message), policy=email_policy.default)
    subject, text, html = render(sent)
    assert read["Subject"] == subject and "€" in subject
    assert read["To"].addresses[0].display_name == name
    assert read["From"].addresses[0].display_name == "Café Ünïcode"
    assert read.get_body(("plain",)).get_content() == text  # type: ignore[union-attr]
    assert read.get_body(("html",)).get_content() == html  # type: ignore[union-attr]
    assert read["X-Payrisk-Notification"] == "k1"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1234, "usd", "$12.34"),
        (500, "jpy", "¥500"),
        (1234, "kwd", "1.234 KWD"),
        (123456789, "chf", "1,234,567.89 CHF"),
    ],
)
def test_amounts_are_formatted_in_the_currencys_minor_units(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_smtp_urls_give_host_port_credentials_and_tls_mode() -> None:
    plain = SmtpSettings.from_url("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.use_tls, plain.start_tls) == ("mail.example.com", 25, False, None)
    secure = SmtpSettings.from_url("smtps://user%40x.com:p%3Ass@mail.example.com")
    assert (secure.port, secure.use_tls, secure.username) == (465, True, "user@x.com")
    assert secure.password is not None and secure.password.get_secret_value() == "p:ss"
    submission = SmtpSettings.from_url("smtp://u:p@mail.example.com?starttls=true&timeout=5")
    assert (submission.port, submission.start_tls, submission.timeout) == (587, True, 5.0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "must start with smtp://"),
        ("smtp://", "has no host"),
        ("smtp://mail.example.com:99999", "invalid port"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtps://mail.example.com?starttls=true", "already uses TLS"),
    ],
)
def test_a_bad_smtp_url_gives_one_clear_message_naming_the_setting(url: str, problem: str) -> None:
    with pytest.raises(NotifierConfigError, match=problem) as caught:
        SmtpSettings.from_url(url)
    assert str(caught.value).startswith("SMTP_URL")


def test_the_password_never_appears_in_an_smtp_url_error() -> None:
    with pytest.raises(NotifierConfigError) as caught:
        SmtpSettings.from_url("smtp://user:hunter2@mail.example.com:0x19")
    assert "hunter2" not in str(caught.value)


def test_mail_from_accepts_a_display_name_and_rejects_non_addresses() -> None:
    assert parse_mail_from("Billing <billing@acme.test>") == "billing@acme.test"
    with pytest.raises(NotifierConfigError, match="^MAIL_FROM"):
        parse_mail_from("billing")


def test_settings_from_the_environment_name_the_missing_webhook_secret() -> None:
    with pytest.raises(NotifierConfigError, match="ALERT_WEBHOOK_SECRET"):
        NotifierSettings.from_config({"webhook_url": "https://hooks.example.com/payrisk"})
    settings = NotifierSettings.from_config({"smtp_url": "smtp://127.0.0.1:1025", "mail_from": "b@acme.test"})
    assert (
        settings.smtp is not None and settings.smtp.port == 1025 and settings.sender_address == "b@acme.test"
    )
