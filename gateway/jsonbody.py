"""JSON answer bodies: orjson on the hot path, the standard library for what orjson refuses (an integer beyond 64
bits that a client once sent and the database kept, say) — an answer is never a 500 because of a value's size."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str)
    except TypeError:  # "Integer exceeds 64-bit range", or a type `default` could not turn into a string
        return json.dumps(value, default=str, ensure_ascii=False).encode()
