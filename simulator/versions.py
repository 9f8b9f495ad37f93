"""Stripe API versions → the shape objects are rendered in. The one place that compares version dates.

Three shape families (by the version's date prefix):

- `classic` (before 2018-11-08): invoices have `paid`, `closed`, `forgiven`, top-level `charge` and `subscription`,
  no `status` and no `payment_intent` (invoices did not use PaymentIntents yet).
- `legacy` (2018-11-08 to 2025-03-30): invoices have `status`, `auto_advance`, top-level `charge`,
  `payment_intent`, `subscription` and `paid`; charges and payment intents carry `invoice`.
- `basil` (2025-03-31 and later, e.g. `2025-03-31.basil`, `2026-06-24.dahlia`): no top-level `charge`,
  `payment_intent`, `subscription` or `paid` on invoices (the subscription is under
  `parent.subscription_details`, payments are the includable `payments` list); no `invoice` on charges or
  payment intents; subscription periods live on the items.

Finer renames within a family, from Stripe's changelog, are flags of the `View`: invoice `date` → `created`
(2019-03-14); `billing` → `collection_method`, subscription `start` → `start_date`, customer `account_balance` →
`balance` (2019-10-17); customers stop embedding `sources` and `subscriptions` (2020-08-27); a new invoice no
longer takes in the customer's pending invoice items unless asked (`pending_invoice_items_behavior` defaults to
`exclude`, 2022-08-01); payment intents replace the embedded `charges` list with `latest_charge` (2022-11-15).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

Shape = Literal["classic", "legacy", "basil"]

LEGACY_FROM = "2018-11-08"
INVOICE_CREATED_FROM = "2019-03-14"
COLLECTION_METHOD_FROM = "2019-10-17"
CUSTOMER_LISTS_UNTIL = "2020-08-27"
PENDING_ITEMS_EXCLUDED_FROM = "2022-08-01"
LATEST_CHARGE_FROM = "2022-11-15"
BASIL_FROM = "2025-03-31"

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


def valid_version(version: str) -> str:
    """`version` if it looks like a Stripe API version (`2020-08-27`, `2025-03-31.basil`); else ValueError."""
    if not _VERSION.match(version):
        raise ValueError(f"invalid Stripe API version {version!r} (expected e.g. 2020-08-27 or 2025-03-31.basil)")
    return version


def shape_of(version: str) -> Shape:
    date = version[:10]
    if date < LEGACY_FROM:
        return "classic"
    return "legacy" if date < BASIL_FROM else "basil"


@dataclass(frozen=True, slots=True)
class View:
    """How to render objects: the version's shape and renames, plus what the reader asked to expand/include."""

    version: str
    shape: Shape
    invoice_date: bool  # invoices have `date`, not `created`
    billing_field: bool  # `billing` (not `collection_method`), subscription `start`, customer `account_balance`
    customer_lists: bool  # customers embed `sources` and `subscriptions` by default
    pending_items_included: bool  # a new invoice takes in pending invoice items unless told to `exclude` them
    pi_charges_list: bool  # payment intents embed `charges` (a list) instead of `latest_charge`
    expand: frozenset[str] = field(default_factory=frozenset)  # request `expand[]` paths (also includable fields)

    @property
    def pre_basil(self) -> bool:
        """Invoices carry top-level `charge`/`subscription`/`paid`; charges and payment intents carry `invoice`."""
        return self.shape != "basil"

    def includes(self, name: str) -> bool:
        """Whether an includable field (`payments`, `sources`, …) was asked for: `expand[]=name`, a path below
        it (`payments.data.payment.payment_intent`), or the same on a list's items (`data.name…`)."""
        return any(
            path == prefix or path.startswith(prefix + ".") for path in self.expand for prefix in (name, f"data.{name}")
        )

    def plain(self) -> View:
        """The same version without expansions (for nested objects)."""
        return view_of(self.version)


def view_of(version: str, expand: Iterable[str] = ()) -> View:
    paths = frozenset(expand)
    return _view(version, paths)


@lru_cache(maxsize=512)
def _view(version: str, expand: frozenset[str]) -> View:
    date = version[:10]
    return View(
        version=version,
        shape=shape_of(version),
        invoice_date=date < INVOICE_CREATED_FROM,
        billing_field=date < COLLECTION_METHOD_FROM,
        customer_lists=date < CUSTOMER_LISTS_UNTIL,
        pending_items_included=date < PENDING_ITEMS_EXCLUDED_FROM,
        pi_charges_list=date < LATEST_CHARGE_FROM,
        expand=expand,
    )
