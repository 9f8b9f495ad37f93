"""Dunning emails: SMTP settings from `SMTP_URL`, Jinja2 rendering (HTML + text), sending with aiosmtplib over
pooled connections (`smtp_pool.py`); and the plain-text alert email of a tenant that gave an alert address."""

from __future__ import annotations

import ssl
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, parseaddr
from functools import cache
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import aiosmtplib
import jinja2
from pydantic import BaseModel, ConfigDict, SecretStr

from actors.notifier.errors import DeliveryError, NotifierConfigError
from actors.notifier.messages import AlertPayload, EmailPayload, format_amount, format_local_time, subject_for
from actors.notifier.policy import zone_for
from actors.notifier.smtp_pool import SmtpPool

TEMPLATES = Path(__file__).parent / "templates"
_DEFAULT_PORTS = {("smtps", False): 465, ("smtp", True): 587, ("smtp", False): 25}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
#: SMTP reply codes that mean our credentials are wrong: fixable configuration, so worth retrying.
_AUTH_CODES = frozenset({530, 534, 535, 538})


class SmtpSettings(BaseModel):
    """Where and how to submit mail. `start_tls=None` upgrades when the server offers it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = False  # implicit TLS (smtps://)
    start_tls: bool | None = None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse `smtp://user:pass@host:port?starttls=true` or `smtps://...`; NotifierConfigError if bad."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise NotifierConfigError(f"SMTP_URL must start with smtp:// or smtps:// (got {parts.scheme!r})")
        if not parts.hostname:
            raise NotifierConfigError("SMTP_URL has no host (expected smtp://user:pass@host:port)")
        query = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
        start_tls = _flag(query.get("starttls"))
        implicit = parts.scheme == "smtps"
        if implicit and start_tls:
            raise NotifierConfigError("SMTP_URL: smtps:// already uses TLS; drop ?starttls=true")
        return cls(
            host=parts.hostname,
            port=_port(parts) or _DEFAULT_PORTS[(parts.scheme, bool(start_tls))],
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            use_tls=implicit,
            start_tls=False if implicit else start_tls,
            timeout=_timeout(query.get("timeout")),
        )


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port  # the property validates the range
    except ValueError as error:
        raise NotifierConfigError("SMTP_URL has an invalid port (expected 1-65535)") from error
    return port or None


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise NotifierConfigError(f"SMTP_URL: starttls must be true or false (got {value!r})")


def _timeout(value: str | None) -> float:
    try:
        return float(value) if value is not None else 30.0
    except ValueError as error:
        raise NotifierConfigError(f"SMTP_URL: timeout must be seconds (got {value!r})") from error


def parse_mail_from(value: str) -> str:
    """The bare sender address from `MAIL_FROM` (`billing@example.com` or `Billing <billing@example.com>`)."""
    _, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain:
        raise NotifierConfigError(f"MAIL_FROM must be an address like billing@example.com (got {value!r})")
    return address


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(payload: EmailPayload) -> tuple[str, str, str]:
    """(subject, text, html) for `payload`."""
    amount = format_amount(payload.amount_due, payload.currency)
    subject = subject_for(payload.template, payload.branding.name, amount)
    zone = zone_for(payload.timezone, "UTC")
    context = {
        "subject": subject,
        "brand": payload.branding,
        "customer_name": payload.customer_name,
        "amount": amount,
        "invoice_id": payload.invoice_id,
        "link": str(payload.hosted_invoice_url) if payload.hosted_invoice_url else None,
        "next_attempt": format_local_time(payload.next_attempt_at, zone) if payload.next_attempt_at else None,
    }
    env = _environment()
    text = env.get_template(f"{payload.template.value}.txt.j2").render(context)
    html = env.get_template(f"{payload.template.value}.html.j2").render(context)
    return subject, text, html


def build_message(
    payload: EmailPayload, *, mail_from: str, message_id: str, key: str, now: datetime
) -> Message:
    """The MIME message (text + HTML alternative) with a deterministic Message-ID.

    Built with the email package's compat32 classes: the same message as `EmailMessage` would make (non-ASCII
    headers as RFC 2047 encoded words, the text part 8bit when its lines are short, the HTML quoted-printable), at a
    fifth of the cost — its header registry re-parsed every header we set, a third of a notifier's time."""
    subject, text, html = render(payload)
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((payload.branding.name, mail_from), charset="utf-8")
    message["To"] = formataddr((payload.customer_name or "", payload.to), charset="utf-8")
    message["Reply-To"] = payload.branding.support_email
    message["Subject"] = _header(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["X-Payrisk-Notification"] = key
    message.attach(_text_part(text, "plain"))
    message.attach(_text_part(html, "html"))
    return message


_UTF8_8BIT, _UTF8_QP = Charset("utf-8"), Charset("utf-8")
_UTF8_8BIT.body_encoding = None  # 7bit or 8bit, by the content
_UTF8_QP.body_encoding = QP


def _header(value: str) -> str | Header:
    """A header value as is when ASCII, else as encoded words."""
    return value if value.isascii() else Header(value, "utf-8")


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A text part: as is (7bit or 8bit) when no line is over 78 octets (as `EmailMessage` decides), else
    quoted-printable."""
    part = MIMENonMultipart("text", subtype)
    short = max((len(line.encode()) for line in body.splitlines()), default=0) <= 78
    part.set_payload(body, _UTF8_8BIT if short else _UTF8_QP)
    return part


def build_alert_message(
    alert: AlertPayload, *, tenant_id: str, to: str, mail_from: str, message_id: str, key: str, now: datetime
) -> EmailMessage:
    """An alert to a tenant's alert address (`alert_channels.email`): plain text, the alert's fields listed."""
    message = EmailMessage()
    message["From"] = formataddr(("payrisk alerts", mail_from))
    message["To"] = to
    title = " ".join(alert.title.split())  # a header never carries a line break from a provider's code
    message["Subject"] = f"[payrisk {alert.severity}] {title}"[:200]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Payrisk-Notification"] = key
    lines = [alert.text, "", *(f"{name}: {value}" for name, value in alert.fields.items()),
             "", f"tenant {tenant_id} · {alert.kind} · {alert.severity}"]
    message.set_content("\n".join(lines) + "\n")
    return message


async def send_message(settings: SmtpSettings, message: Message, pool: SmtpPool | None = None) -> None:
    """Submit `message`; DeliveryError (permanent for 5xx mailbox/content refusals) on failure.

    With `pool`, over one of its open connections to that server (see `SmtpPool.send` for the one retry);
    without, over a connection of its own, closed after the message."""
    try:
        await (pool or SmtpPool(max_idle=0)).send(settings, message)
    except aiosmtplib.SMTPRecipientsRefused as error:
        permanent = all(refusal.code >= 500 for refusal in error.recipients)
        raise DeliveryError(f"SMTP refused the recipient: {error}", permanent=permanent) from error
    except aiosmtplib.SMTPResponseException as error:
        permanent = error.code >= 500 and error.code not in _AUTH_CODES
        raise DeliveryError(f"SMTP error {error.code}: {error.message}", permanent=permanent) from error
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
        raise DeliveryError(f"SMTP unavailable: {error}") from error
