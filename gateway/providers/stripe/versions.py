"""Where each fact lives in a Stripe object, per API version range: the one field map of the Stripe parser.

Stripe renders a webhook in the API version of its endpoint, so one platform receives every shape at once. The
ranges below are the breaking changes that matter to recovery (stripe-python CHANGELOG, ../shared reference):

- `2017-08-15` … `2018-11-07` — invoices have `charge`, `subscription`, `paid`/`closed`/`forgiven` and no `status`
  nor `payment_intent`; customers pay with *sources* (`default_source`, `sources.data[]`), charges carry `source`.
- `2018-11-08` … `2025-03-30` — invoices gain `status` and (from 2019) `payment_intent`; charge and payment intent
  carry `invoice`. From `2020-08-27` a customer no longer embeds `sources`; `default_source` stays.
- `2025-03-31.basil` and later — an invoice has no `charge`, `payment_intent`, `subscription` or `paid`; the
  subscription moves to `parent.subscription_details.subscription` and the payments to `payments.data[].payment`
  (an *includable* field: absent from webhooks unless someone expanded it); charges and payment intents lose
  `invoice`. Invoice, payment intent and charge are then linked only through the API (InvoicePayments).

A sender is not always the version it claims (a proxy, an old fixture, a hand-written test), so `read` tries the
paths of the claimed version first and then every other range's: a field is never missed because it moved.
Each path is a tuple of keys; `[]` in a path means "the newest element of this list".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]
LEGACY_UNTIL = "2018-11-08"  # first version with invoice `status`
BASIL = "2025-03-31"  # first version without invoice `charge` / `payment_intent`


@dataclass(frozen=True, slots=True)
class VersionRange:
    name: str
    since: str  # first API version date (inclusive) of this range
    fields: Mapping[str, tuple[Path, ...]]


_INVOICE_LEGACY: dict[str, tuple[Path, ...]] = {
    "invoice.subscription": (("subscription",),),
    "invoice.payment_intent": (("payment_intent",),),
    "invoice.charge": (("charge",),),
    "charge.invoice": (("invoice",),),
    "payment_intent.invoice": (("invoice",),),
}
_INVOICE_BASIL: dict[str, tuple[Path, ...]] = {
    "invoice.subscription": (("parent", "subscription_details", "subscription"),),
    "invoice.payment_intent": (("payments", "data", "[]", "payment", "payment_intent"),),
    "invoice.charge": (("payments", "data", "[]", "payment", "charge"),),
    "charge.invoice": (),
    "payment_intent.invoice": (),
}
_COMMON: dict[str, tuple[Path, ...]] = {
    # the customer's default instrument: a PaymentMethod (invoice settings) or, with the sources API, a source
    "customer.default_payment_method": (("invoice_settings", "default_payment_method"), ("default_source",)),
    "customer.created": (("created",),),
    "subscription.default_payment_method": (("default_payment_method",), ("default_source",)),
    "subscription.started": (("start_date",), ("start",), ("created",)),  # `start` before 2018-ish
}

RANGES: tuple[VersionRange, ...] = (
    VersionRange("sources", "2017-08-15", {**_COMMON, **_INVOICE_LEGACY}),
    VersionRange("legacy", LEGACY_UNTIL, {**_COMMON, **_INVOICE_LEGACY}),
    VersionRange("basil", BASIL, {**_COMMON, **_INVOICE_BASIL}),
)


def range_of(api_version: str | None) -> VersionRange:
    """The range an API version string (`2020-08-27`, `2025-03-31.basil`) falls in; unknown → the newest."""
    if not api_version:
        return RANGES[-1]
    date = api_version[:10]
    chosen = RANGES[0]
    for candidate in RANGES:
        if date >= candidate.since:
            chosen = candidate
    return chosen


def read(obj: Mapping[str, Any], concept: str, api_version: str | None) -> Any:
    """The first present value of `concept` in `obj`: the claimed version's paths first, then the others'."""
    for path in _search_order(range_of(api_version), concept):
        value = _at(obj, path)
        if value is not None:
            return value
    return None


def _search_order(own: VersionRange, concept: str) -> tuple[Path, ...]:
    """`concept`'s paths, `own` range's first, then the others' newest first, each path once (kept per pair)."""
    key = (own.name, concept)
    order = _ORDERS.get(key)
    if order is None:
        paths = [p for r in (own, *(r for r in reversed(RANGES) if r is not own)) for p in r.fields.get(concept, ())]
        order = _ORDERS[key] = tuple(dict.fromkeys(paths))
    return order


_ORDERS: dict[tuple[str, str], tuple[Path, ...]] = {}


def _at(obj: Any, path: Path) -> Any:
    for key in path:
        if key == "[]":
            obj = _newest(obj)
        elif isinstance(obj, Mapping):
            obj = obj.get(key)
        else:
            return None
        if obj is None:
            return None
    return obj


def _newest(items: Any) -> Any:
    """The newest element of a list of objects (by `created`, the default one winning a tie)."""
    if not isinstance(items, list):
        return None
    objects = [item for item in items if isinstance(item, Mapping)]

    def order(item: Mapping[str, Any]) -> tuple[int, bool]:
        created = item.get("created")
        return (created if isinstance(created, int) else 0, item.get("is_default") is True)

    return max(objects, key=order, default=None)
