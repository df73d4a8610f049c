"""Per-client counters that every sync summary surfaces (calls, retries, 429s, waits, pages).

``reporting_calls`` counts calls that reached Klaviyo's reporting endpoints (the 225/day quota),
answered or not; ``reporting_unanswered`` those of them that gave no usable answer (read timeout,
dropped answer, 5xx) yet may have been counted. A refused connection reached nothing: not counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Diagnostics:
    """Thread-safe counters; ``to_dict()`` is JSON-able and ``merge()`` sums task summaries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.pages: Counter[str] = Counter()
        self.reporting_calls = 0
        self.reporting_unanswered = 0
        self.retries = 0
        self.http_429 = 0
        self.seconds_waited = 0.0

    def record_call(self, endpoint: str, *, reporting: bool) -> None:
        with self._lock:
            self.calls[endpoint] += 1
            if reporting:
                self.reporting_calls += 1

    def record_unanswered(self) -> None:
        with self._lock:
            self.reporting_unanswered += 1

    def record_page(self, endpoint: str) -> None:
        with self._lock:
            self.pages[endpoint] += 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_429(self) -> None:
        with self._lock:
            self.http_429 += 1

    def record_wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.seconds_waited += seconds

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(sorted(self.calls.items())),
                "reporting_calls": self.reporting_calls,
                "reporting_unanswered": self.reporting_unanswered,
                "retries": self.retries,
                "http_429": self.http_429,
                "seconds_waited": round(self.seconds_waited, 3),
                "pages": dict(sorted(self.pages.items())),
            }

    @staticmethod
    def merge(*parts: dict[str, Any] | Diagnostics | None) -> dict[str, Any]:
        """Sum several ``to_dict()`` results (e.g. from mapped tasks) into one (``core.summary`` does the sum)."""
        from flowsync_provider.core.summary import merge_diagnostics

        zero = {"calls": {}, "reporting_calls": 0, "reporting_unanswered": 0, "retries": 0, "http_429": 0,
                "seconds_waited": 0.0, "pages": {}}
        data = [p.to_dict() if isinstance(p, Diagnostics) else p for p in parts]
        merged = merge_diagnostics([zero, *data])
        merged["calls"] = dict(sorted(merged["calls"].items()))
        merged["pages"] = dict(sorted(merged["pages"].items()))
        return merged
