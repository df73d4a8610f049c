"""Profile → subscribers.csv rows: spec paths, hashing with/without key, dropping names."""

from __future__ import annotations

import hashlib
import hmac

import core_docs as d

from flowsync_provider.core.csvio import csv_text
from flowsync_provider.core.schemas import SUBSCRIBERS_COLUMNS
from flowsync_provider.core.subscribers import hash_email, profile_row

SUPPRESSED = [{"reason": "HARD_BOUNCE", "timestamp": "2025-02-01T00:00:00+00:00"},
              {"reason": "SPAM_COMPLAINT", "timestamp": "2025-03-01T00:00:00+00:00"}]


def test_profile_row_reads_spec_paths() -> None:
    profile = d.profile("P1", "Ada@Example.com", consent="UNSUBSCRIBED", can_receive=False, suppression=SUPPRESSED)
    row = profile_row(profile, ["Zeta", "Newsletter", "Zeta", ""], hash_emails=False, hash_key=None,
                      drop_names=False)
    assert row == {
        "Profile ID": "P1", "Email": "Ada@Example.com", "First Name": "Ada", "Last Name": "Lovelace",
        "Created": "2024-01-01T00:00:00+00:00", "Updated": "2025-09-01T12:00:00+00:00",
        "Email Marketing Consent": "UNSUBSCRIBED", "Consent Timestamp": "2024-05-01T10:00:00+00:00",
        "Can Receive Email Marketing": False, "Suppression Reason": "HARD_BOUNCE;SPAM_COMPLAINT",
        "Lists": "Newsletter;Zeta",
    }
    assert list(row) == list(SUBSCRIBERS_COLUMNS)
    line = csv_text(SUBSCRIBERS_COLUMNS, [row]).splitlines()[1]
    assert line.endswith(",UNSUBSCRIBED,2024-05-01T10:00:00+00:00,false,HARD_BOUNCE;SPAM_COMPLAINT,Newsletter;Zeta")


def test_hashing_with_and_without_key_and_drop_names() -> None:
    profile = d.profile("P1", "  Ada@Example.com ")
    plain = profile_row(profile, [], hash_emails=True, hash_key=None, drop_names=True)
    assert plain["Email"] == hashlib.sha256(b"ada@example.com").hexdigest()
    assert plain["First Name"] == "" and plain["Last Name"] == ""
    keyed = profile_row(profile, [], hash_emails=True, hash_key=b"k1", drop_names=False)
    assert keyed["Email"] == hmac.new(b"k1", b"ada@example.com", hashlib.sha256).hexdigest()
    assert keyed["Email"] != plain["Email"] and keyed["Email"] != hash_email("ada@example.com", b"k2")
    assert hash_email("ADA@example.com", None) == hash_email(" ada@example.com", None)
    assert keyed["First Name"] == "Ada"
    assert "ada" not in csv_text(SUBSCRIBERS_COLUMNS, [plain]).lower()


def test_profile_without_subscriptions_or_email() -> None:
    profile = d.profile("P2", "")
    del profile["attributes"]["subscriptions"]
    row = profile_row(profile, [], hash_emails=True, hash_key=None, drop_names=False)
    assert row["Email"] == "" and row["Email Marketing Consent"] == "" and row["Suppression Reason"] == ""
    assert row["Can Receive Email Marketing"] is None
    assert csv_text(SUBSCRIBERS_COLUMNS, [row]).splitlines()[1] == "P2,,Ada,Lovelace,2024-01-01T00:00:00+00:00," \
        "2025-09-01T12:00:00+00:00,,,,,"
