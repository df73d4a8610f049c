"""Klaviyo look-alike HTTP server (revision 2026-07-15) for demos, tests and benchmarks.

``from flowsync_dev.sandbox import SandboxServer``; ground truth lives in
``flowsync_dev.sandbox.data.SandboxAccount`` (pure, no HTTP).
"""

from __future__ import annotations

from flowsync_dev.sandbox.data import SandboxAccount
from flowsync_dev.sandbox.server import SandboxServer

__all__ = ["SandboxAccount", "SandboxServer"]
