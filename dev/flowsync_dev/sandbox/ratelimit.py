"""Sliding-window rate-limit enforcement for the sandbox, from the shared limits table.

Limits come from ``flowsync_provider.core.limits.limits_for`` so the client's pacing and the
sandbox's enforcement agree by construction. Windows (1 s burst, 60 s steady, 86400 s daily) are
divided by ``time_scale``; all numbers reported to clients (Retry-After, RateLimit-Reset) are
*nominal* seconds = real seconds x time_scale, so a client dividing by the same scale waits the
right real time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from flowsync_provider.core.limits import RateLimit, limits_for


@dataclass(frozen=True)
class Decision:
    """Outcome of one admission check (all seconds nominal)."""

    allowed: bool
    bucket: str
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int = 0


class RateLimiter:
    """Per (api key id, bucket) sliding windows; a rejected request consumes nothing."""

    def __init__(self, time_scale: float = 1.0, enabled: bool = True) -> None:
        self.time_scale = float(time_scale or 1.0)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()

    def usage(self, key_id: str, bucket: str, window_seconds: float = 86400.0, now: float | None = None) -> int:
        """Requests counted against (key, bucket) within the last nominal ``window_seconds``."""
        now = time.monotonic() if now is None else now
        real = window_seconds / self.time_scale
        with self._lock:
            return sum(1 for t in self._hits.get((key_id, bucket), ()) if t > now - real)

    def _windows(self, rate: RateLimit) -> list[tuple[int, float, float]]:
        """(limit, real window seconds, nominal window seconds)."""
        return [(limit, seconds / self.time_scale, seconds) for limit, seconds in rate.windows()]

    def check(self, key_id: str, method: str, path: str, now: float | None = None) -> Decision:
        """Admit (and record) or reject one request."""
        bucket, rate = limits_for(method, path)
        now = time.monotonic() if now is None else now
        windows = self._windows(rate)
        with self._lock:
            hits = self._hits.setdefault((key_id, bucket), deque())
            longest = max(w[1] for w in windows)
            while hits and hits[0] <= now - longest:
                hits.popleft()
            if not self.enabled:
                hits.append(now)
                limit = windows[0][0]
                return Decision(True, bucket, limit, limit, 0)
            # rejection: the window that frees up last decides Retry-After
            wait_real = 0.0
            for limit, real, _nominal in windows:
                in_window = [t for t in hits if t > now - real]
                if len(in_window) >= limit:
                    oldest_blocking = in_window[len(in_window) - limit]
                    wait_real = max(wait_real, oldest_blocking + real - now)
            if wait_real > 0:
                limit, remaining, reset = self._tightest(hits, windows, now)
                retry = max(1, math.ceil(wait_real * self.time_scale))
                return Decision(False, bucket, limit, 0, retry, retry)
            hits.append(now)
            limit, remaining, reset = self._tightest(hits, windows, now)
            return Decision(True, bucket, limit, remaining, reset)

    def _tightest(self, hits: deque[float], windows: list[tuple[int, float, float]],
                  now: float) -> tuple[int, int, int]:
        """(limit, remaining, nominal reset seconds) of the window with the fewest requests left."""
        best: tuple[int, int, int] | None = None
        for limit, real, _nominal in windows:
            in_window = [t for t in hits if t > now - real]
            remaining = max(0, limit - len(in_window))
            reset = math.ceil((in_window[0] + real - now) * self.time_scale) if in_window else 0
            if best is None or remaining < best[1]:
                best = (limit, remaining, max(0, reset))
        assert best is not None
        return best
