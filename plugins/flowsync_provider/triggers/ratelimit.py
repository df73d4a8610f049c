"""A trigger that only waits out a Klaviyo rate-limit window, so no worker slot is held meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class KlaviyoRateLimitTrigger(BaseTrigger):
    """Fire once ``retry_at`` (epoch seconds) has passed. No I/O, no side effects: only primitives."""

    def __init__(self, retry_at: float, bucket: str = "", poll_interval: float = 30.0) -> None:
        super().__init__()
        self.retry_at = float(retry_at)
        self.bucket = bucket
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"retry_at": self.retry_at, "bucket": self.bucket, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Sleep in slices so a cancelled/rescheduled triggerer notices promptly.
        while (remaining := self.retry_at - time.time()) > 0:
            await asyncio.sleep(min(remaining, self.poll_interval))
        yield TriggerEvent({"status": "ready", "bucket": self.bucket, "retry_at": self.retry_at})
