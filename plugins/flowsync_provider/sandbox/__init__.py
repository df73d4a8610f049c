"""Klaviyo look-alike HTTP server (revision 2026-07-15) for demos, tests and benchmarks.

``from flowsync_provider.sandbox import SandboxServer``; ground truth lives in
``flowsync_provider.sandbox.data.SandboxAccount`` (pure, no HTTP).
"""

from __future__ import annotations

from flowsync_provider.sandbox.data import SandboxAccount
from flowsync_provider.sandbox.server import SandboxServer

__all__ = ["SandboxAccount", "SandboxServer"]
