"""The attempt-ledger key: one per task instance and account, shared by Airflow's retries, fresh after a clear."""

from __future__ import annotations

from types import SimpleNamespace

from flowsync_provider.operators.base import KlaviyoBaseOperator


def key(**changes) -> str:
    ti = {"dag_id": "klaviyo_flow_sync", "run_id": "manual__2026-01-01", "task_id": "report", "map_index": 0,
          "try_number": 1, "max_tries": 2, **changes}
    account = ti.pop("account", "acct-digest")
    return KlaviyoBaseOperator.ledger_key({"ti": SimpleNamespace(**ti)}, account)


def test_same_key_for_every_retry_of_one_task_instance():
    assert key(try_number=1) == key(try_number=2) == key(try_number=3)


def test_key_differs_per_chunk_run_task_account_and_clear():
    base = key()
    others = [key(map_index=1), key(run_id="manual__2026-01-02"), key(dag_id="klaviyo_snapshot_history"),
              key(task_id="report_chunk"), key(account="other-account"),
              key(max_tries=5, try_number=4)]  # a clear raises max_tries: a fresh allowance
    assert len({base, *others}) == len(others) + 1
