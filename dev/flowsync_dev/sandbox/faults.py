"""Seeded fault injection: reproducible 5xx, slow answers and dropped connections.

The n-th API request (admin routes excluded) draws from an RNG seeded by (seed, n), so two
servers with the same seed and the same request sequence inject the same faults.
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

    def __init__(self, seed: int, fault_rate: float = 0.0) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        self.seed = seed
        self.fault_rate = fault_rate
        self._n = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Restart the request sequence (so a reset server replays the same faults)."""
        with self._lock:
            self._n = 0

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
