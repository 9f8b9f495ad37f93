"""Stripe's `expand[]`: replace id fields of a rendered object by the objects, following dotted paths.

`data.` walks into a list's items (`expand[]=data.payment_intent` on `GET /v1/charges`). A path that names a field
the rendered object lacks (for its API version) is Stripe's 400 "This property cannot be expanded"; an includable
field the renderer added on request (`payments`, `sources`) is already an object and is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from simulator.errors import invalid_request

Obj = dict[str, Any]
#: (field name, id) → the expanded object, or None when the id is unknown
Resolve = Callable[[str, str], Obj | None]


def expand(obj: Obj, paths: Iterable[str], resolve: Resolve, *, strict: bool = True) -> Obj:
    """Expand `paths` in place and return `obj`. Without `strict`, paths the object lacks are skipped."""
    for path in sorted(paths):
        _walk(obj, path.split("."), resolve, path, strict)
    return obj


def _walk(node: Obj, parts: list[str], resolve: Resolve, path: str, strict: bool) -> None:
    head, rest = parts[0], parts[1:]
    if head == "data" and node.get("object") == "list" and rest:
        for item in node["data"]:
            _walk(item, rest, resolve, path, strict)
        return
    if head not in node:
        if strict:
            raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
        return
    value = node[head]
    if isinstance(value, str):
        expanded = resolve(head, value)
        if expanded is None:
            raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
        node[head] = value = expanded
    if rest and isinstance(value, dict):
        _walk(value, rest, resolve, path, strict)
