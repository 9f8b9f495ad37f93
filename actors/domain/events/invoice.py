"""Events of one invoice's recovery case: the failure, its classification, the plan, our attempts, the outcome.

Fields added to an event after it was first recorded have a default, so the logs written before still replay.
"""

from __future__ import annotations

from actors.domain.events.base import InvoiceEvent, IsoTime, Json


class PaymentFailed(InvoiceEvent):
    """The provider reported a failed payment of the invoice (a new failure; not our own attempt's)."""

    at: IsoTime
    occurred_at: IsoTime | None = None
    amount_due: int | None = None
    currency: str | None = None
    subscription_id: str | None = None
    hosted_invoice_url: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    provider_attempt_count: int | None = None
    customer_email: str | None = None
    next_payment_attempt: IsoTime | None = None
    delivery_id: int | None = None
    payment_method_id: str | None = None
    classify_at: IsoTime | None = None
    charge_less: bool | None = None


class FailureClassified(InvoiceEvent):
    """The failure's category, with where its decline codes came from (`details_from`)."""

    classification: Json
    card: Json | None = None
    at: IsoTime | None = None
    provider: str | None = None
    details_from: list[Json] | None = None


class PlanEvent(InvoiceEvent):
    """What the strategy decided for the case: the next action, when, and the strategy that said so."""

    action: str
    at: IsoTime | None
    attempt_no: int
    max_attempts: int
    explanation: str
    strategy: Json | None


class RetryScheduled(PlanEvent):
    retryable: bool | None = None
    #: why a retry came before the strategy's time: `card_update`, `operator`
    resume_reason: str | None = None


class AwaitingCustomer(PlanEvent):
    """The customer must act (new card, authentication) before a deadline; `action=observe` in observe mode."""


class Escalated(PlanEvent):
    """A configuration error: retries held, engineering alerted."""


class Halted(PlanEvent):
    """Fraud flagged: reported, nothing more is tried."""


class Exhausted(PlanEvent):
    """The strategy's final action was taken."""

    final_action: str | None = None


class RetryPaused(PlanEvent):
    """A due retry held while an incident is open for the provider; rechecked at `at`."""


class AttemptEvent(InvoiceEvent):
    attempt_no: int
    idempotency_key: str | None


class AttemptStarted(AttemptEvent):
    """Our retry charge is about to be sent (the intent is committed before the call)."""

    idempotency_key: str
    at: IsoTime | None = None
    payment_method_id: str | None = None
    reconcile_at: IsoTime | None = None


class AttemptSucceeded(AttemptEvent):
    pass


class AttemptFailed(AttemptEvent):
    decline: Json | None = None


class AttemptUnknown(AttemptEvent):
    """The provider's answer is unknown (timeout, 5xx): reconciled later with the same key."""

    reason: str | None = None


class InvoiceRecovered(InvoiceEvent):
    at: IsoTime
    via: str | None = None  # retry | provider
    amount: int | None = None
    currency: str | None = None
    credited_to: str | None = None  # card_update: the customer's new card made it


class InvoiceClosed(InvoiceEvent):
    reason: str  # voided | uncollectible | subscription_deleted | closed by …
    at: IsoTime | None = None


class DetailsRequested(InvoiceEvent):
    """A provider API read asked for what the failure's deliveries lacked (decline codes, the customer's tenure)."""

    failure_no: int
    codes: bool
    customer: bool
    payment_intent_id: str | None
    charge_id: str | None
    at: IsoTime


class DetailsFetched(InvoiceEvent):
    """The read's answer, or `unanswered` when the classification deadline came first."""

    failure_no: int
    found_in: list[str]
    error: str | None
    customer: bool
    customer_since: IsoTime | None
    at: IsoTime
    unanswered: bool | None = None


class UnknownCodeSeen(InvoiceEvent):
    """A decline code no classification row covers; `handled_as` is the fallback's category."""

    provider: str
    code: str
    handled_as: str | None
    table: str


class OperatorActed(InvoiceEvent):
    """An operator's command on the case, with its outcome (`done` / `refused`) and why."""

    action: str
    request_id: str
    principal: str
    outcome: str
    explanation: str
    at: IsoTime
