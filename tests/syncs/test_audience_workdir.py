"""export_audience leaves no work files when it stops early: a rate-limit deferral or a row budget breach.

A scripted client (unit edge case: the deferral path needs a quota exhausted mid-stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowsync_provider.core.params import SyncRequest
from flowsync_provider.klaviyo import KlaviyoRateLimitExceeded
from flowsync_provider.syncs.audience import export_audience


def _profile(i: int) -> dict[str, Any]:
    return {"type": "profile", "id": f"P{i:05d}",
            "attributes": {"email": f"ada.rossi.{i}@example.com", "first_name": "Ada", "last_name": "Rossi",
                           "created": "2025-01-01T00:00:00+00:00", "updated": "2025-01-02T00:00:00+00:00",
                           "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}


class StopsMidway:
    """Two pages of profiles, then the profiles bucket is exhausted for an hour."""

    def get_lists(self) -> list[dict[str, Any]]:
        return [{"type": "list", "id": "L1", "attributes": {"name": "VIP"}}]

    def iter_list_profile_ids(self, list_id: str) -> Iterator[list[str]]:
        yield ["P00001"]

    def iter_pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield {"data": [_profile(i) for i in range(100)]}
        yield {"data": [_profile(i) for i in range(100, 200)]}
        raise KlaviyoRateLimitExceeded(retry_at=4_102_444_800.0, bucket="profiles")


def test_deferral_midway_removes_the_work_dir(tmp_path: Path) -> None:
    plan = {"request": SyncRequest(format="csv", rowBudget=1_000_000).to_dict(), "updated_since": None}
    with pytest.raises(KlaviyoRateLimitExceeded):
        export_audience(StopsMidway(), plan, tmp_path / "run", hash_key=None, chunk_rows=50)
    assert [p.name for p in (tmp_path / "run").rglob("*")] == []
