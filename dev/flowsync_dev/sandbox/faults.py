"""Seeded fault injection: reproducible 5xx, slow answers and dropped connections.

The n-th API request (admin routes excluded) draws from an RNG seeded by (seed, n), so two
servers with the same seed and the same request sequence inject the same faults.

``report_delay`` is not random: every reporting call is served (counted, logged) and its answer
then held back that many Klaviyo seconds (divided by the time scale), like a slow report whose
client gave up first. It reproduces "the client timed out but Klaviyo still spent the quota".
``report_delay_count`` > 0 holds back only the first that many reporting answers (a slow spell).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "slow", "drop")


@dataclass(frozen=True)
class Fault:
    kind: str  # one of FAULT_KINDS
    delay: float = 0.0  # real seconds, for "slow"

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None


class FaultInjector:
    """Decides per request whether (and how) to misbehave."""

    def __init__(self, seed: int, fault_rate: float = 0.0, *, report_delay: float = 0.0,
                 report_delay_count: int = 0, time_scale: float = 1.0) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        if report_delay < 0:
            raise ValueError(f"report_delay must be >= 0 seconds, got {report_delay}")
        self.seed = seed
        self.fault_rate = fault_rate
        self.report_delay = report_delay
        self.report_delay_count = report_delay_count
        self.time_scale = time_scale
        self._delayed = 0
        self._n = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Restart the request sequence (so a reset server replays the same faults)."""
        with self._lock:
            self._n = 0
            self._delayed = 0

    def answer_delay(self, bucket: str | None) -> float:
        """Real seconds to hold back an already-served answer (reporting bucket only)."""
        if bucket != "reporting" or self.report_delay <= 0:
            return 0.0
        with self._lock:
            if self.report_delay_count and self._delayed >= self.report_delay_count:
                return 0.0
            self._delayed += 1
        return self.report_delay / self.time_scale

    def next(self) -> Fault | None:
        """The fault for the next request, or None."""
        with self._lock:
            n = self._n
            self._n += 1
        if self.fault_rate <= 0:
            return None
        rng = random.Random(f"{self.seed}:fault:{n}")
        if rng.random() >= self.fault_rate:
            return None
        kind = rng.choice(FAULT_KINDS)
        return Fault(kind, rng.uniform(0.3, 1.5) if kind == "slow" else 0.0)
