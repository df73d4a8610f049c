"""Klaviyo's filter mini-language (``and(equals(status,'live'),any(id,["a","b"]))``): parse and evaluate.

Used for the ``filter`` query parameter of GET collections and the ``filter`` attribute of
report bodies. Parsing is strict (unbalanced parentheses, unknown operators, fields or operators
an endpoint does not allow → ``FilterError``) so client bugs surface as 400s, as with Klaviyo.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

COMPARISONS = {"equals", "any", "contains", "starts-with", "ends-with", "greater-than", "less-than",
               "greater-or-equal", "less-or-equal", "contains-any", "contains-all", "has"}


class FilterError(ValueError):
    """A filter the endpoint rejects; the message is the JSON:API error detail."""


@dataclass(frozen=True)
class Cond:
    op: str
    field: str
    value: Any


@dataclass(frozen=True)
class And:
    parts: tuple[Any, ...]


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"""|(?P<punct>[(),\[\]])|(?P<bare>[^\s(),\[\]'"]+))"""
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"Invalid filter syntax near position {pos}.")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", m.group("str")[1:-1]))
        elif m.group("punct") is not None:
            out.append(("punct", m.group("punct")))
        elif m.group("bare") is not None:
            out.append(("bare", m.group("bare")))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise FilterError("Invalid filter syntax: unexpected end or token"
                              + (f" {tok[1]!r}" if tok else "") + ".")
        self.i += 1
        return tok

    def parse(self) -> Any:
        parts = [self.expr()]
        while self.peek() == ("punct", ","):
            self.take()
            parts.append(self.expr())
        if self.peek() is not None:
            raise FilterError(f"Invalid filter syntax: unexpected {self.peek()[1]!r}.")
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def expr(self) -> Any:
        kind, name = self.take("bare")
        self.take("punct", "(")
        if name in ("and", "or", "not"):
            if name != "and":
                raise FilterError(f"Operator {name!r} is not supported here; only 'and' may combine filters.")
            parts = [self.expr()]
            while self.peek() == ("punct", ","):
                self.take()
                parts.append(self.expr())
            self.take("punct", ")")
            return And(tuple(parts))
        if name not in COMPARISONS:
            raise FilterError(f"Unknown filter operator {name!r}.")
        _k, field = self.take("bare")
        self.take("punct", ",")
        value = self.value()
        self.take("punct", ")")
        return Cond(name, field, value)

    def value(self) -> Any:
        tok = self.peek()
        if tok == ("punct", "["):
            self.take()
            items = []
            if self.peek() != ("punct", "]"):
                items.append(self.scalar())
                while self.peek() == ("punct", ","):
                    self.take()
                    items.append(self.scalar())
            self.take("punct", "]")
            return items
        return self.scalar()

    def scalar(self) -> Any:
        kind, raw = self.take()
        if kind == "str":
            return raw
        if kind != "bare":
            raise FilterError(f"Invalid filter value {raw!r}.")
        low = raw.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if re.fullmatch(r"-?\d+", raw):
            return int(raw)
        if re.fullmatch(r"-?\d+\.\d+", raw):
            return float(raw)
        return raw  # bare datetimes and identifiers


def parse(text: str) -> Any:
    """Parse a filter string into Cond/And nodes."""
    if not text or not text.strip():
        raise FilterError("Filter must not be empty.")
    return _Parser(text).parse()


def conditions(node: Any) -> list[Cond]:
    """Flatten the (and-only) tree into its conditions."""
    if isinstance(node, Cond):
        return [node]
    return [c for p in node.parts for c in conditions(p)]


def check_allowed(node: Any, allowed: Mapping[str, set[str]], once_per_field: bool = False) -> None:
    """Reject fields/operators the endpoint does not support (Klaviyo lists them per endpoint)."""
    seen: set[str] = set()
    for c in conditions(node):
        if c.field not in allowed:
            raise FilterError(f"'{c.field}' is not a valid field for this filter. "
                              f"Allowed fields: {', '.join(sorted(allowed))}.")
        if c.op not in allowed[c.field]:
            raise FilterError(f"'{c.op}' is not a valid operator for '{c.field}'. "
                              f"Allowed: {', '.join(sorted(allowed[c.field]))}.")
        if c.op in ("any", "contains-any", "contains-all") and not isinstance(c.value, list):
            raise FilterError(f"'{c.op}' on '{c.field}' requires a list value.")
        if isinstance(c.value, list) and len(c.value) > 100:
            raise FilterError(f"Too many items in the list for '{c.field}' (max 100).")
        if once_per_field and c.field in seen:
            raise FilterError(f"Only one filter can be used per attribute ('{c.field}').")
        seen.add(c.field)


def _coerce(actual: Any, value: Any) -> Any:
    """Bring a filter literal to the type of the resource's field (datetimes, dates, bools)."""
    if isinstance(actual, datetime) and isinstance(value, str):
        try:
            v = datetime.fromisoformat(value)
        except ValueError as exc:
            raise FilterError(f"Invalid datetime {value!r} in filter.") from exc
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(actual, date) and not isinstance(actual, datetime) and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(actual, bool) and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def evaluate(node: Any, get: Callable[[str], Any]) -> bool:
    """Whether a resource (field getter ``get``) matches the filter."""
    if isinstance(node, And):
        return all(evaluate(p, get) for p in node.parts)
    actual = get(node.field)
    op, value = node.op, node.value
    if op in ("any", "contains-any"):
        if isinstance(actual, (list, tuple, set)):
            return any(v in actual for v in value)
        return any(actual == _coerce(actual, v) for v in value)
    if op == "contains-all":
        items = actual if isinstance(actual, (list, tuple, set)) else [actual]
        return all(v in items for v in value)
    if op == "has":
        return bool(actual)
    value = _coerce(actual, value)
    if op == "equals":
        return actual == value
    if actual is None:
        return False
    if op == "contains":
        return isinstance(actual, str) and str(value) in actual
    if op == "starts-with":
        return isinstance(actual, str) and actual.startswith(str(value))
    if op == "ends-with":
        return isinstance(actual, str) and actual.endswith(str(value))
    try:
        if op == "greater-than":
            return actual > value
        if op == "less-than":
            return actual < value
        if op == "greater-or-equal":
            return actual >= value
        if op == "less-or-equal":
            return actual <= value
    except TypeError as exc:
        raise FilterError(f"Cannot compare '{node.field}' with {node.value!r}.") from exc
    raise FilterError(f"Unknown filter operator {op!r}.")
