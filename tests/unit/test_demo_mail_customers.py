"""Simulated customers who read the demo's caught dunning emails: the header names the invoice and template, a
reaction is drawn with paired luck, and carried out on the simulator (a new default card, or the invoice paid)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from payrisk.demo.ledger import score
from payrisk.demo.mail import MailReaders, dunning_email
from simulator.catalog import is_hard
from simulator.core import Simulator, SimulatorSettings
from simulator.customer_actions import act, seen
from simulator.email_reaction import load_reaction


def email(key: str) -> EmailMessage:
    message = EmailMessage()
    message["X-Payrisk-Notification"] = key
    return message


def declined_invoice() -> tuple[Simulator, str]:
    """A simulator with one customer whose first renewal declined (`always_decline:insufficient_funds`)."""
    sim = Simulator(SimulatorSettings(seed=3, customers=1, model="always_decline:insufficient_funds"))
    sim.advance(sim.now() + timedelta(days=32))
    invoice = next(e.invoice for e in sim.ledger_entries() if e.source == "automatic")
    return sim, invoice


def test_a_dunning_email_is_read_from_its_notification_header() -> None:
    assert dunning_email(email("email:default:in_123:payment_failed:1")) == ("in_123", "payment_failed")
    assert dunning_email(email("email:default:in_123:recovered:2")) is None
    assert dunning_email(email("alert:default:first_failure:cus_1")) is None and dunning_email(EmailMessage()) is None


def test_the_reader_sees_the_failure_as_the_customer_would() -> None:
    sim, invoice = declined_invoice()
    view = seen(sim, invoice, "payment_failed", 1)
    assert view is not None and view.template == "payment_failed" and view.nth_on_invoice == 1
    assert not view.hard_decline and view.amount > 0 and 0 <= view.local_hour < 24


def test_a_customer_who_updates_the_card_gets_a_new_default_card() -> None:
    sim, invoice = declined_invoice()
    customer = sim.billing.customer(sim.billing.invoice(invoice).customer)
    before = customer.default_payment_method
    assert act(sim, invoice, "update_card")
    assert customer.default_payment_method not in (None, before)


def test_a_customer_who_pays_the_hosted_invoice_is_not_counted_as_a_retry() -> None:
    sim, invoice = declined_invoice()
    assert act(sim, invoice, "pay_invoice")
    row = score("payrisk", sim.ledger_entries(), is_hard)
    assert row.customer_payments == 1 and row.retries == 0


def test_reactions_are_paired_and_carried_out_when_due() -> None:
    def run() -> tuple[int, list[object]]:
        sim, invoice = declined_invoice()
        mail = [email(f"email:default:{invoice}:action_required:{n}") for n in range(1, 30)]
        eager = load_reaction().model_copy(update={"act_probability": {"action_required": 1.0}, "repeat_decay": 1.0})
        readers = MailReaders(sim, lambda: mail, seed=5, ordinal=lambda _c, _i: 0, config=eager)
        readers.read()
        queued = [(at, action) for at, _, _, action in sorted(readers.due)]
        readers.act_until(sim.now() + timedelta(days=30))
        return readers.actions, queued

    first, second = run(), run()
    assert first == second  # the same customers react the same way, at the same times
    assert first[1] and first[0] >= 1  # some react (time of day and age still lower the chance)


def test_a_customer_whose_subscription_was_canceled_does_not_act() -> None:
    sim, invoice = declined_invoice()
    subscription = sim.billing.invoice(invoice).subscription
    assert subscription is not None
    sim.billing.cancel_subscription(subscription)
    assert seen(sim, invoice, "final_notice", 1) is None and not act(sim, invoice, "pay_invoice")


def test_a_reaction_counts_from_when_the_email_was_sent_not_from_when_it_was_read() -> None:
    """The demo reads the mail of an outbox pass one step later: the reader acts from the email's `Date`."""
    from email.utils import format_datetime

    def queued(sent_hours_ago: int | None) -> list[object]:
        sim, invoice = declined_invoice()
        message = email(f"email:default:{invoice}:action_required:1")
        if sent_hours_ago is not None:
            message["Date"] = format_datetime(sim.now() - timedelta(hours=sent_hours_ago))
        eager = load_reaction().model_copy(update={"act_probability": {"action_required": 1.0}, "repeat_decay": 1.0})
        readers = MailReaders(sim, lambda: [message], seed=6, ordinal=lambda _c, _i: 0, config=eager)
        readers.read()
        return [at for at, *_ in readers.due]

    read_now, sent_earlier = queued(None), queued(1)  # seed 6: this reader acts at either hour
    assert read_now and sent_earlier
    assert sent_earlier[0] == read_now[0] - timedelta(hours=1)  # type: ignore[operator]
    assert dunning_email(email("email:default:in_1:payment_failed:1")) == ("in_1", "payment_failed")
