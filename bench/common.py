"""Shared bench plumbing: a sandbox per scenario, the rate-limit floor, a markdown table."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from flowsync_provider.core.limits import limits_for

TIME_SCALE = 20.0


def floor_seconds(requests: Iterable[dict[str, Any]], time_scale: float) -> float:
    """The least wall time the calls in ``requests`` need under the spec's limits (real seconds).

    Per bucket: n calls need at least floor((n-1)/burst) seconds and floor((n-1)/steady) minutes;
    the run's floor is the largest bucket floor (buckets can overlap, so this is a true lower bound).
    """
    counts: Counter[str] = Counter()
    sample_path: dict[str, tuple[str, str]] = {}
    for r in requests:
        if r.get("fault") or r.get("status") == 429 or not r.get("operation"):
            continue
        bucket, _ = limits_for(r["method"], r["path"])
        counts[bucket] += 1
        sample_path[bucket] = (r["method"], r["path"])
    best = 0.0
    for bucket, n in counts.items():
        _, limit = limits_for(*sample_path[bucket])
        nominal = max(math.floor((n - 1) / limit.burst_per_s) * 1.0,
                      math.floor((n - 1) / limit.steady_per_min) * 60.0)
        if limit.daily and n > limit.daily:
            nominal = max(nominal, math.floor((n - 1) / limit.daily) * 86400.0)
        best = max(best, nominal)
    return best / time_scale


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)
