"""Account ids and uploadIds of the snapshot plans: distinct per account whatever the params, checked first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.ids import safe_segment
from flowsync_provider.core.params import validate_request
from flowsync_provider.syncs import snapshot_plan
from flowsync_provider.syncs.snapshot_plan import given_upload_id, parse_accounts

TWO = [{"accountId": "acme/eu", "klaviyoConnId": "klaviyo_a"}, {"accountId": "acme_eu", "klaviyoConnId": "klaviyo_b"}]


def test_two_accounts_whose_ids_sanitise_alike_are_kept_apart() -> None:
    accounts = parse_accounts(TWO)
    assert [a["accountId"] for a in accounts] == ["acme/eu", "acme_eu"]
    assert all(a["accountCount"] == 2 for a in accounts)
    assert len({safe_segment(a["accountId"]) for a in accounts}) == 2


def test_more_than_one_account_needs_an_account_id_each() -> None:
    with pytest.raises(ParamError, match=r"flowsync_accounts\[1\] needs an accountId"):
        parse_accounts([{"accountId": "acme", "klaviyoConnId": "klaviyo_a"}, {"klaviyoConnId": "klaviyo_b"}])
    single = parse_accounts([{"klaviyoConnId": "klaviyo_a"}])  # one account: the Klaviyo id is unique enough
    assert single == [{"accountId": None, "klaviyoConnId": "klaviyo_a", "accountCount": 1}]
    with pytest.raises(ParamError, match="repeats account 'acme'"):
        parse_accounts([{"accountId": "acme", "klaviyoConnId": "a"}, {"accountId": "acme", "klaviyoConnId": "b"}])
    with pytest.raises(ParamError, match=r"accountId must be text"):
        parse_accounts([{"accountId": ["x"], "klaviyoConnId": "a"}])


def test_an_explicit_upload_id_gets_the_account_segment_when_several_accounts_share_the_run() -> None:
    accounts = parse_accounts(TWO)
    ids = [given_upload_id({"uploadId": "nightly-1"}, a) for a in accounts]
    assert ids == [f"nightly-1-{safe_segment('acme/eu')}", "nightly-1-acme_eu"]
    assert given_upload_id({"uploadId": "nightly-1"}, parse_accounts(TWO[:1])[0]) == "nightly-1"  # one account
    assert given_upload_id({"uploadId": None}, accounts[0]) is None
    with pytest.raises(ParamError, match="too long for a 2-account run"):
        given_upload_id({"uploadId": "u" * 125}, accounts[1])


@pytest.mark.parametrize("bad", ["a..b", "abc\n"])
def test_bad_upload_ids_fail_the_plans_before_any_klaviyo_call(bad: str) -> None:
    class NoCalls:
        def __getattr__(self, name: str):
            raise AssertionError(f"Klaviyo was called ({name}) for uploadId {bad!r}")

    spec = parse_accounts(None)[0]
    for plan in (lambda: snapshot_plan.nightly_plan(NoCalls(), spec, {"uploadId": bad}, anchor=datetime.now(UTC),
                                                    dag_id="d", run_id="r"),
                 lambda: snapshot_plan.history_plan(NoCalls(), spec, {"uploadId": bad}, now=datetime.now(UTC),
                                                    dag_id="d", run_id="r")):
        with pytest.raises(ParamError, match="no '..'"):
            plan()
    with pytest.raises(ParamError, match="1–128 characters"):
        validate_request({"uploadId": bad}, {}, sync="flows")
