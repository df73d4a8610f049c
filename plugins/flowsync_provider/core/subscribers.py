"""Profile resources → subscribers.csv rows, with optional email hashing and name dropping (PII control).

Paths follow the spec's ``Subscriptions`` schema (``additional-fields[profile]=subscriptions``):
``attributes.subscriptions.email.marketing`` {consent, consent_timestamp, can_receive_email_marketing,
suppression: [{reason, timestamp}]}. Timestamps are passed through as the API returns them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from flowsync_provider.core.schemas import SUBSCRIBERS_COLUMNS


def hash_email(email: str, key: bytes | None) -> str:
    """Hex HMAC-SHA256 of the normalised (stripped, lower-cased) email, or plain SHA-256 without a key.

    A keyed hash keeps emails joinable across exports without being reversible by dictionary attack.
    """
    normalised = email.strip().lower().encode("utf-8")
    if key:
        return hmac.new(key, normalised, hashlib.sha256).hexdigest()
    return hashlib.sha256(normalised).hexdigest()


def email_marketing(profile: dict) -> dict:
    """The profile's ``subscriptions.email.marketing`` object ({} when absent or null)."""
    attrs = profile.get("attributes") or {}
    subscriptions = attrs.get("subscriptions") or {}
    return ((subscriptions.get("email") or {}).get("marketing")) or {}


def profile_row(
    profile: dict,
    list_names: Iterable[str],
    *,
    hash_emails: bool,
    hash_key: bytes | None,
    drop_names: bool,
) -> dict:
    """One SUBSCRIBERS row for a profile resource; ``list_names`` are the names of the lists it belongs to."""
    attrs = profile.get("attributes") or {}
    marketing = email_marketing(profile)
    email = attrs.get("email") or ""
    if email and hash_emails:
        email = hash_email(email, hash_key)
    reasons = [str(s.get("reason")) for s in marketing.get("suppression") or []
               if isinstance(s, dict) and s.get("reason")]
    can_receive = marketing.get("can_receive_email_marketing")
    row = {
        "Profile ID": str(profile.get("id") or ""),
        "Email": email,
        "First Name": "" if drop_names else (attrs.get("first_name") or ""),
        "Last Name": "" if drop_names else (attrs.get("last_name") or ""),
        "Created": attrs.get("created") or "",
        "Updated": attrs.get("updated") or "",
        "Email Marketing Consent": marketing.get("consent") or "",
        "Consent Timestamp": marketing.get("consent_timestamp") or "",
        "Can Receive Email Marketing": None if can_receive is None else bool(can_receive),
        "Suppression Reason": ";".join(reasons),
        "Lists": ";".join(sorted({name for name in list_names if name})),
    }
    return {column: row[column] for column in SUBSCRIBERS_COLUMNS}
