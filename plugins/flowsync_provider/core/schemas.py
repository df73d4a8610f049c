"""The CSV contracts with the snapshot processor: exact headers, one formatting table, one stat mapping.

Headers are byte-for-byte what the dashboard's processor reads; change them only together with it.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FLOWS_COLUMNS: tuple[str, ...] = (
    "Day", "Flow ID", "Flow Name", "Flow Message ID", "Flow Message Name", "Flow Message Channel", "Status",
    "Delivered", "Unique Opens", "Open Rate", "Unique Clicks", "Click Rate", "Placed Order",
    "Placed Order Rate", "Revenue", "Revenue per Recipient", "Unsub Rate", "Complaint Rate", "Bounce Rate",
    "Tags",
)

CAMPAIGNS_COLUMNS: tuple[str, ...] = (
    "Campaign ID", "Campaign Name", "Campaign Message ID", "Channel", "Send Time", "Send Day", "Status",
    "Subject", "Audiences", "Recipients", "Delivered", "Unique Opens", "Open Rate", "Unique Clicks",
    "Click Rate", "Placed Order", "Placed Order Rate", "Revenue", "Revenue per Recipient", "Unsubscribes",
    "Unsub Rate", "Complaint Rate", "Bounce Rate", "Tags",
)

SUBSCRIBERS_COLUMNS: tuple[str, ...] = (
    "Profile ID", "Email", "First Name", "Last Name", "Created", "Updated", "Email Marketing Consent",
    "Consent Timestamp", "Can Receive Email Marketing", "Suppression Reason", "Lists",
)

TEXT, DATE, COUNT, RATE, MONEY, BOOL = "text", "date", "count", "rate", "money", "bool"

# Column → kind, for every column of every schema (a column means the same thing in every file).
COLUMN_KINDS: dict[str, str] = {
    "Day": DATE, "Send Day": DATE,
    "Delivered": COUNT, "Unique Opens": COUNT, "Unique Clicks": COUNT, "Placed Order": COUNT,
    "Recipients": COUNT, "Unsubscribes": COUNT,
    "Open Rate": RATE, "Click Rate": RATE, "Placed Order Rate": RATE, "Unsub Rate": RATE,
    "Complaint Rate": RATE, "Bounce Rate": RATE,
    "Revenue": MONEY, "Revenue per Recipient": MONEY,
    "Can Receive Email Marketing": BOOL,
}  # anything else is text

# Column → Klaviyo reporting statistic (flow and campaign values/series reports).
COLUMN_STATISTICS: dict[str, str] = {
    "Delivered": "delivered",
    "Unique Opens": "opens_unique",
    "Open Rate": "open_rate",
    "Unique Clicks": "clicks_unique",
    "Click Rate": "click_rate",
    "Placed Order": "conversion_uniques",
    "Placed Order Rate": "conversion_rate",
    "Revenue": "conversion_value",
    "Revenue per Recipient": "revenue_per_recipient",
    "Unsub Rate": "unsubscribe_rate",
    "Complaint Rate": "spam_complaint_rate",
    "Bounce Rate": "bounce_rate",
    "Recipients": "recipients",
    "Unsubscribes": "unsubscribe_uniques",
}

# Requested once per flow report call (recipients is not a flows.csv column but weights merged rates).
FLOW_STATISTICS: tuple[str, ...] = (
    "delivered", "recipients", "opens_unique", "open_rate", "clicks_unique", "click_rate",
    "conversion_uniques", "conversion_rate", "conversion_value", "revenue_per_recipient",
    "unsubscribe_rate", "spam_complaint_rate", "bounce_rate",
)
CAMPAIGN_STATISTICS: tuple[str, ...] = FLOW_STATISTICS + ("unsubscribe_uniques",)

# Statistics that add up across days/chunks; rates don't (they are re-weighted, see rows.merge_stats).
ADDITIVE_STATISTICS: frozenset[str] = frozenset({
    "delivered", "recipients", "opens_unique", "opens", "clicks_unique", "clicks", "conversion_uniques",
    "conversions", "conversion_value", "unsubscribe_uniques", "unsubscribes", "spam_complaints", "bounced",
    "bounced_or_failed", "failed",
})
ADDITIVE_COLUMNS: tuple[str, ...] = tuple(
    column for column, stat in COLUMN_STATISTICS.items() if stat in ADDITIVE_STATISTICS
)

_QUANTUM = {COUNT: Decimal("1"), RATE: Decimal("0.000001"), MONEY: Decimal("0.01")}


def kind_of(column: str) -> str:
    return COLUMN_KINDS.get(column, TEXT)


def to_decimal(value: object) -> Decimal:
    """A number as Decimal via its shortest repr (no binary artefacts); None/blank/NaN/garbage → 0."""
    if value is None or isinstance(value, bool):
        return Decimal(int(bool(value)))
    if isinstance(value, Decimal):
        return value if value.is_finite() else Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(0)
    if isinstance(value, int):
        return Decimal(value)
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return Decimal(0)
    return result if result.is_finite() else Decimal(0)


def format_number(value: object, kind: str) -> str:
    """count → integer, rate → 6 decimals, money → 2 decimals; ROUND_HALF_UP; never "-0"."""
    quantized = to_decimal(value).quantize(_QUANTUM[kind], rounding=ROUND_HALF_UP)
    if quantized == 0:
        quantized = abs(quantized)
    return format(quantized, "f")


def format_value(column: str, value: object) -> str:
    """Format one cell by its column's kind (the single formatting rule for every CSV)."""
    kind = kind_of(column)
    if kind in _QUANTUM:
        return format_number(value, kind)
    if value is None:
        return ""
    if kind == BOOL:
        if isinstance(value, str):
            return {"true": "true", "false": "false"}.get(value.strip().lower(), "")
        return "true" if value else "false"
    if kind == DATE and isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)
