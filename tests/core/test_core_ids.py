"""core.ids: the one injective id → path-segment rule and the one uploadId rule."""

from __future__ import annotations

import itertools
import re

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.ids import MAX_SEGMENT, UPLOAD_ID_RULE, check_upload_id, safe_segment
from flowsync_provider.core.summary import run_folder

SEGMENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
RAW_IDS = [
    "acme/eu", "acme_eu", "acme:eu", "acme eu", "acme\\eu", "acme-eu", "acme--eu", "acme_eu--0123456789",
    "..", ".", "", " ", "/", "-", "_", "../../etc", "a..b", "acc_canary_1", "ACME_EU", "Acme_Eu", "acme_eu\n",
    "x" * MAX_SEGMENT, "x" * (MAX_SEGMENT + 1), "x" * 200 + "a", "x" * 200 + "b", "é", "e", "账户",
    "scheduled__2025-09-17T01:00:00+00:00", "manual__2025-09-17T01:00:00.000001+00:00",
]


def test_safe_ids_are_kept_unchanged() -> None:
    for raw in ("acc_canary_1", "acme_eu", "acme-eu", "ABC123", "a.b", "x" * MAX_SEGMENT, "klaviyo_snapshot_nightly"):
        assert safe_segment(raw) == raw


def test_the_rule_is_injective_and_always_a_safe_segment() -> None:
    segments = {raw: safe_segment(raw) for raw in RAW_IDS}
    assert len(set(segments.values())) == len(RAW_IDS), segments
    for raw, segment in segments.items():
        assert SEGMENT.fullmatch(segment), (raw, segment)
        assert ".." not in segment and "/" not in segment and segment not in (".", "..")
        assert len(segment) <= MAX_SEGMENT + 12
        assert safe_segment(raw) == segment  # stable


def test_changed_ids_carry_a_hash_of_the_raw_id() -> None:
    hashed = re.compile(r"[A-Za-z0-9._-]+--[0-9a-f]{10}")
    for raw in ("acme/eu", "acme:eu", "..", "", "acme--eu", "a..b", "x" * (MAX_SEGMENT + 1)):
        assert hashed.fullmatch(safe_segment(raw)), raw
    assert safe_segment("acme/eu").startswith("acme_eu--")
    # truncation alone also adds the hash: two long ids with the same first 48 characters stay apart
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert safe_segment(long_a) != safe_segment(long_b)
    assert safe_segment(long_a).startswith("x" * MAX_SEGMENT + "--")
    # a safe id can never look like a hashed one ('--' is reserved for the hash)
    assert safe_segment("acme_eu--" + safe_segment("acme/eu").split("--")[1]) != safe_segment("acme/eu")


def test_run_folders_of_two_accounts_never_coincide(tmp_path) -> None:
    run = "scheduled__2025-09-17T07:00:00+00:00"
    folders = [run_folder("klaviyo_snapshot_nightly", run, a, home=tmp_path) for a in ("acme/eu", "acme_eu", "acme:eu")]
    assert len(set(folders)) == 3
    assert run_folder("klaviyo_snapshot_nightly", run, "acme_eu", home=tmp_path).parent.name == "acme_eu"
    assert all(tmp_path in f.parents for f in folders)
    for a, b in itertools.combinations(folders, 2):
        assert a not in b.parents and b not in a.parents
    for folder in folders:
        assert folder.resolve().is_relative_to(tmp_path / "runs")


@pytest.mark.parametrize("good", ["a", "acc_canary_1-20250917T010000Z-3fa1c2", "2025-09-17T01-00-00Z",
                                  "2025-09-17T01:00:00Z", "a.b", "A" * 128, "9_x:y-z"])
def test_upload_id_rule_accepts(good: str) -> None:
    assert check_upload_id(good) == good


@pytest.mark.parametrize("bad", ["a..b", "abc\n", "", "-abc", ".abc", "_abc", ":abc", "A" * 129, " abc", "abc ",
                                 "a/b", "../x", "a\nb", "é", None, 123])
def test_upload_id_rule_refuses_with_one_sentence_naming_what_is_allowed(bad: object) -> None:
    with pytest.raises(ParamError) as err:
        check_upload_id(bad)
    message = str(err.value)
    assert message.startswith("uploadId ") and message.endswith(f"use {UPLOAD_ID_RULE}.")
    assert "1–128 characters" in message and "no '..'" in message


def test_upload_id_rule_raises_the_callers_error() -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused, match="uploadId"):
        check_upload_id("a..b", error=Refused)
