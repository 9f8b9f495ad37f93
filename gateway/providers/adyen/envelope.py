"""The Adyen Standard webhook envelope: `{"live": "false", "notificationItems": [{"NotificationRequestItem": …}]}`.

Each item is its own provider event; its dedupe key is `pspReference:eventCode:success` (plus `originalReference`
for modifications), as Adyen recommends, because Adyen has no event id and may deliver an item twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.providers.base import PayloadError
from gateway.providers.stripe.fields import Obj, mapping, text


@dataclass(frozen=True, slots=True)
class AdyenItem:
    item: Obj
    live: bool

    @property
    def event_code(self) -> str:
        return text(self.item.get("eventCode")) or ""

    @property
    def success(self) -> bool:
        return str(self.item.get("success")).lower() == "true"

    @property
    def additional(self) -> Obj:
        return mapping(self.item.get("additionalData"))

    @property
    def key(self) -> str:
        parts = [text(self.item.get("pspReference")) or "", self.event_code, "true" if self.success else "false"]
        original = text(self.item.get("originalReference"))
        return ":".join([*parts, original] if original else parts)


def parse_items(raw_body: bytes) -> list[AdyenItem]:
    try:
        doc = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("notificationItems"), list):
        raise PayloadError("body has no notificationItems list")
    items = [_item(entry) for entry in doc["notificationItems"]]
    if not items:
        raise PayloadError("notificationItems is empty")
    return [AdyenItem(item, str(doc.get("live")).lower() == "true") for item in items]


def _item(entry: Any) -> Obj:
    item = mapping(entry).get("NotificationRequestItem")
    if not isinstance(item, dict) or not text(item.get("pspReference")) or not text(item.get("eventCode")):
        raise PayloadError("a notification item lacks NotificationRequestItem.pspReference or eventCode")
    return item
