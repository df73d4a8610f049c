"""Fixtures for the Klaviyo client tests: a clean environment and MockTransport helpers."""

from __future__ import annotations

import uuid

import httpx
import pytest
from klaviyo_helpers import SECRET


@pytest.fixture(autouse=True)
def _clean_klaviyo_env(monkeypatch, tmp_path):
    """No developer env may leak into a test; limiter state goes to the test's tmp dir."""
    for name in (
        "KLAVIYO_API_KEY",
        "KLAVIYO_API_KEY_PRIVATE",
        "KLAVIYO_API_REVISION",
        "KLAVIYO_LIMIT_GLOBAL_BURST",
        "KLAVIYO_LIMIT_GLOBAL_PER_MINUTE",
        "FLOWSYNC_LIMITER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path / "flowsync-home"))


@pytest.fixture()
def make_client():
    from flowsync_provider.klaviyo import KlaviyoClient

    made: list[KlaviyoClient] = []

    def factory(handler, **kwargs) -> KlaviyoClient:
        kwargs.setdefault("limiter_url", "memory://")
        kwargs.setdefault("time_scale", 20)
        kwargs.setdefault("base_url", "https://a.klaviyo.com")
        client = KlaviyoClient(SECRET, transport=httpx.MockTransport(handler), **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture()
def redis_url():
    import redis

    url = "redis://127.0.0.1:6379/15"
    conn = redis.Redis.from_url(url)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379: run `make services` (make test starts it)")
    prefix = f"flowsync:limiter:test{uuid.uuid4().hex[:8]}"
    yield url, prefix.split(":")[-1]
    for key in conn.scan_iter(match=f"{prefix}*"):
        conn.delete(key)
    for key in conn.scan_iter(match=f"flowsync:limiter:pause:{prefix.split(':')[-1]}*"):
        conn.delete(key)
    conn.close()
