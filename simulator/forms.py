"""Stripe's form encoding: `invoice_settings[default_payment_method]=pm_1`, `items[0][price]=p` → nested values."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from simulator.errors import invalid_request

_PART = re.compile(r"\[([^\]]*)\]")


def parse_form(body: bytes) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """The nested parameters, and the sorted raw pairs (the request's fingerprint for idempotency)."""
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    nested: dict[str, Any] = {}
    for key, value in pairs:
        _assign(nested, _path(key), value)
    return _listify(nested), tuple(sorted(pairs))


def _path(key: str) -> list[str]:
    head = key.split("[", 1)[0]
    return [head, *_PART.findall(key[len(head) :])]


def _assign(node: dict[str, Any], path: list[str], value: str) -> None:
    for index, part in enumerate(path[:-1]):
        part = part or str(len(node))
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"parameter {'.'.join(path[: index + 1])} is both a value and an object")
        node = child
    node[path[-1] or str(len(node))] = value


def _listify(node: Any) -> Any:
    """Objects whose keys are 0..n-1 become lists (`expand[0]`, `items[0][price]`)."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def integer(value: Any, param: str) -> int:
    """`value` as an int, or Stripe's 400 `parameter_invalid_integer` naming `param`."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_request(f"Invalid integer: {value}", code="parameter_invalid_integer", param=param) from None


def truthy(value: Any) -> bool:
    """A form boolean (`confirm=true`)."""
    return str(value).lower() in ("true", "1", "yes")
