"""Ids → path segments, object keys and upload ids: the one rule (pure: no Airflow, no HTTP).

Account ids are free text. Two rules turning them into paths once let ``acme/eu`` and ``acme_eu``
share a run folder (one account uploaded the other's subscribers), so every place an account id,
run id or dag id becomes a path segment, object key or name goes through :func:`safe_segment`, and
every uploadId (given or derived) through :func:`check_upload_id`.

:func:`safe_segment` is injective (up to a 40-bit hash collision):

- an id that is already safe (``[A-Za-z0-9]``, then ``[A-Za-z0-9._-]``, ending in a letter or digit,
  no ``..``, no ``--``, at most ``max_len`` characters) is kept as is: ``acc_canary_1`` → ``acc_canary_1``;
- any other id (changed by sanitising *or* truncation, including the empty id) becomes
  ``<readable part>--<10 hex of sha256(raw id)>``. Safe ids never contain ``--``, so a hashed output
  can never equal a kept one, and two hashed outputs differ whenever their raw ids do.
"""

from __future__ import annotations

import hashlib
import re

from flowsync_provider.core.errors import ParamError

__all__ = ["HASH_SEPARATOR", "MAX_SEGMENT", "UPLOAD_ID_RULE", "check_upload_id", "safe_segment", "short_hash"]

MAX_SEGMENT = 48
HASH_SEPARATOR = "--"
_HASH_LEN = 10
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")

# The one uploadId rule (plan time, upload time, derived ids). fullmatch: no `$`-before-newline hole.
_UPLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
UPLOAD_ID_RULE = "1–128 characters: letters, digits, '.', '_', ':', '-', starting with a letter or digit, no '..'"


def short_hash(text: str, n: int = 6) -> str:
    """``n`` hex digits of sha256(text): stable across processes and Python versions."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _is_safe(raw: str, max_len: int) -> bool:
    return (len(raw) <= max_len and _SAFE_SEGMENT.fullmatch(raw) is not None
            and ".." not in raw and HASH_SEPARATOR not in raw)


def safe_segment(raw: object, *, fallback: str = "id", max_len: int = MAX_SEGMENT) -> str:
    """``raw`` (an account id, run id or dag id) as one path segment / object-key part; injective.

    Safe ids come back unchanged; any other id becomes ``<sanitised, ≤ max_len>--<hash of raw>``
    (``fallback`` is the readable part when nothing readable is left, e.g. for ``""`` or ``"/"``).
    The result always matches ``[A-Za-z0-9][A-Za-z0-9._-]*`` with no ``..`` and is at most
    ``max_len + 12`` characters long.
    """
    text = str(raw)
    if _is_safe(text, max_len):
        return text
    # Runs of unsafe characters become one '_'; '..' and '--' are collapsed, so the readable part never
    # contains the separator and the output has exactly one '--'.
    readable = _UNSAFE_RUN.sub("_", text)
    readable = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", readable))
    readable = re.sub(r"^[^A-Za-z0-9]+", "", readable)[:max_len]
    readable = re.sub(r"[^A-Za-z0-9]+$", "", readable) or fallback
    return f"{readable}{HASH_SEPARATOR}{short_hash(text, _HASH_LEN)}"


def check_upload_id(value: object, *, field: str = "uploadId", error: type[Exception] = ParamError) -> str:
    """Return ``value`` when it is a valid uploadId, else raise ``error`` with one sentence naming the rule.

    Used at plan time (``ParamError``, before anything is fetched) and again at upload
    (``UploadRefused``), so an id that passes the plan is never refused later. Nothing is stripped:
    ``"abc\\n"`` is refused, not silently uploaded to ``abc/``.
    """
    text = value if isinstance(value, str) else None
    if text is None or _UPLOAD_ID.fullmatch(text) is None or ".." in text:
        raise error(f"{field} {value!r} is not a valid object folder: use {UPLOAD_ID_RULE}.")
    return text
