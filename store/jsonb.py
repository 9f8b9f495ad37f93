"""JSON for the store's batch statements: orjson text, sent in binary `text[]` arrays and cast to jsonb in SQL.

Binary arrays spare psycopg the quoting of every body (a regex per value in text arrays), and orjson is several
times faster than the standard library's encoder psycopg's `Jsonb` uses by default.
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # a dict keyed by numbers is written as json.dumps would (keys as strings)


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS).decode()
