"""The pure classification function: provider codes in, one explained Classification out.

Precedence, highest first:
1. a *stop signal*: a row marked `stop` in `outcome_reason`, `advice_code` or `network_advice_code`
   (Stripe `do_not_try_again`, Mastercard advice 03/21, `previously_declined_do_not_retry`, a Radar block);
2. the decline code (and Stripe's `outcome.reason`, which repeats it for issuer declines);
3. the error code; then non-stop advice (a hint when nothing more specific was given);
4. the HTTP status, then the error type. The status comes first inside this tier because it is the sharper
   signal: Stripe's legacy 429 body says `invalid_request_error`, which alone would read as a setup error.

A decline code outranks HTTP 429: the code proves the request reached the issuer and states its verdict on
the card; treating it as rate limiting would retry lost cards with backoff and spend the network budget.

When the most specific code present is not in the table, the next known field decides, capped by the
table's fallback (`unknown=True`); with nothing known, the fallback row decides alone. Counting unknown
codes is the caller's job: this function has no state.
"""

from __future__ import annotations

from collections.abc import Iterator

from actors.domain.classification.loading import ClassificationTables
from actors.domain.classification.tables import NetworkTable, ProviderTable, Row
from actors.domain.classification.taxonomy import Classification, NetworkRule, is_retryable
from actors.domain.inbound import DeclineInfo

SIGNALS = ("outcome_reason", "advice_code", "network_advice_code")
PROBES = ("decline_code", "outcome_reason", "error_code", "advice_code", "network_advice_code", "http_status",
          "error_type")  # fmt: skip
#: Fields kept verbatim in `raw_codes` (message and card identity are not codes).
RAW_FIELDS = ("error_type", "error_code", "decline_code", "advice_code", "network_advice_code",
              "network_decline_code", "outcome_type", "outcome_reason", "network_status", "risk_level",
              "http_status", "card_brand")  # fmt: skip

Match = tuple[str, str, Row]  # field, value, row


def classify(provider: str, decline: DeclineInfo, tables: ClassificationTables) -> Classification:
    """Classify one failed attempt reported by `provider` (raises UnknownProviderError without a table)."""
    table = tables.table(provider)
    raw = _raw_codes(decline)
    stop = next(_matches(table, tables.networks, raw, SIGNALS, stop_only=True), None)
    matches = list(_matches(table, tables.networks, raw, PROBES))
    unknown = None if stop else _first_unknown(raw, matches)
    winner = stop or (matches[0] if matches else None)
    return _verdict(provider, table, tables.networks, raw, winner, matches, unknown)


def _raw_codes(decline: DeclineInfo) -> dict[str, str]:
    values = {name: getattr(decline, name) for name in RAW_FIELDS}
    return {name: str(value).strip() for name, value in values.items() if value not in (None, "")}


def _matches(
    table: ProviderTable,
    networks: NetworkTable,
    raw: dict[str, str],
    fields: tuple[str, ...],
    stop_only: bool = False,
) -> Iterator[Match]:
    """Every present field in `fields` order that has a row (only stop rows when `stop_only`)."""
    for name in fields:
        row = _find(table, networks, name, raw[name]) if name in raw else None
        if row is not None and (row.stop or not stop_only):
            yield name, raw[name], row


def _find(table: ProviderTable, networks: NetworkTable, name: str, value: str) -> Row | None:
    if name == "outcome_reason":  # Stripe repeats the decline code here for issuer declines
        return table.find(name, value) or table.find("decline_code", value)
    if name == "network_advice_code":  # a provider may renumber advice codes; else the Mastercard meaning
        code = leading_code(value)
        return table.find(name, code) or networks.advice(code)
    if name == "http_status":
        return table.find(name, value) or table.find(name, value[:1] + "xx")
    return table.find(name, value)


def _first_unknown(raw: dict[str, str], matches: list[Match]) -> str | None:
    """The first code field, in precedence order, that is present but has no row before a known one."""
    decided_by = matches[0][0] if matches else None
    for name in PROBES:
        if name == decided_by:
            return None
        if name in raw and (name != "http_status" or not decided_by):  # an unlisted status alone is not news
            return f"{name}={raw[name]}"
    return "none"


def leading_code(value: str) -> str:
    """`"01 : New account information available"` (Adyen's format) → `"01"`."""
    return value.split(":", 1)[0].strip()


def _verdict(
    provider: str,
    table: ProviderTable,
    networks: NetworkTable,
    raw: dict[str, str],
    winner: Match | None,
    matches: list[Match],
    unknown: str | None,
) -> Classification:
    name, value, row = winner or ("fallback", "", table.fallback)
    rule = network_rule(networks, raw, row)
    cap = _cap(row, table.fallback) if unknown else row.max_attempts_cap
    return Classification(
        category=row.category,
        reason=row.reason,
        retryable=is_retryable(row.category),
        customer_action=row.customer_action,
        network_rule=rule,
        min_delay_seconds=max(row.min_delay_seconds, _advice_delay(networks, raw)),
        max_attempts_cap=cap,
        raw_codes=raw,
        table_id=table.id,
        table_version=table.version,
        network_table_version=networks.version,
        explanation=_explain(provider, name, value, row, matches, unknown),
        unknown=unknown is not None,
        unknown_code=None if unknown in (None, "none") else unknown,
        matched_on=name,
    )


def _cap(row: Row, fallback: Row) -> int | None:
    """An unknown code earns no more attempts than the fallback allows; a non-retryable one needs no cap."""
    if not is_retryable(row.category):
        return row.max_attempts_cap
    caps = [c for c in (row.max_attempts_cap, fallback.max_attempts_cap) if c is not None]
    return min(caps) if caps else None


def network_rule(networks: NetworkTable, raw: dict[str, str], row: Row) -> NetworkRule:
    """The Visa category (from the raw response code on Visa cards, else the row's hint) and the MAC."""
    brand = raw.get("card_brand", "").lower()
    visa = None if brand not in ("", "visa") else row.visa_category
    if brand == "visa" and "network_decline_code" in raw:
        visa = networks.visa_category(leading_code(raw["network_decline_code"]))
    advice = leading_code(raw["network_advice_code"]) if "network_advice_code" in raw else None
    parts = [f"Visa category {visa} ({networks.visa_name(visa)})"] if visa else []
    if advice is not None:
        meaning = networks.advice(advice)
        parts.append(f"Mastercard advice {advice} ({meaning.explanation if meaning else 'not in the table'})")
    return NetworkRule(visa_category=visa, mastercard_advice=advice, summary="; ".join(parts) or "none")


def _advice_delay(networks: NetworkTable, raw: dict[str, str]) -> int:
    """Mastercard advice 02 and 24–30 are minimum waits whichever row decided."""
    advice = networks.advice(leading_code(raw["network_advice_code"])) if "network_advice_code" in raw else None
    return advice.min_delay_seconds if advice else 0


def _explain(provider: str, name: str, value: str, row: Row, matches: list[Match], unknown: str | None) -> str:
    head = f"{provider} {name} {value}".rstrip() if name != "fallback" else f"{provider}: no known code"
    text = f"{head}: {row.explanation}"
    if unknown and unknown != "none":
        text = f"unknown {unknown.replace('=', ' ')}, decided safely by {name}; {text}"
    outranked = next((m for m in matches if m[0] != name and m[2].category != row.category), None)
    if outranked:
        text += f" (outranks {outranked[0]} {outranked[1]}: {outranked[2].category})"
    return text
