"""A tiny HTTP helper for sandbox tests: Klaviyo headers, and honest waiting on 429s.

Deliberately independent of the project's client so sandbox tests check the server alone.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from flowsync_dev.sandbox import SandboxServer

REVISION = "2026-07-15"


class Api:
    """GET/POST against a sandbox; on 429 sleeps Retry-After / time_scale (nominal → real) and retries."""

    def __init__(self, srv: SandboxServer, key: str | None = None, retry_429: bool = True) -> None:
        self.srv = srv
        self.retry_429 = retry_429
        self.client = httpx.Client(base_url=srv.url, timeout=30.0, headers={
            "Authorization": f"Klaviyo-API-Key {key or srv.api_key}", "revision": REVISION,
            "Accept": "application/vnd.api+json", "Content-Type": "application/vnd.api+json"})

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        for _ in range(50):
            resp = self.client.request(method, url, **kw)
            if resp.status_code != 429 or not self.retry_429:
                return resp
            time.sleep(int(resp.headers["Retry-After"]) / self.srv.time_scale + 0.01)
        raise AssertionError("still throttled after 50 attempts")

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.request("GET", url, params=params or None)

    def post(self, url: str, body: Any, **params: Any) -> httpx.Response:
        return self.request("POST", url, json=body, params=params or None)

    def collect(self, url: str, **params: Any) -> tuple[list[dict], list[dict], int]:
        """All pages of a collection: (data, included, number of pages)."""
        data: list[dict] = []
        included: list[dict] = []
        pages = 0
        resp = self.get(url, **params)
        while True:
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            pages += 1
            data += doc["data"]
            included += doc.get("included", [])
            nxt = doc["links"].get("next")
            if not nxt:
                return data, included, pages
            resp = self.request("GET", nxt)

    def close(self) -> None:
        self.client.close()


def report_body(rtype: str, stats: list[str], metric: str, start: str | None = None, end: str | None = None,
                key: str | None = None, interval: str | None = "daily", **extra: Any) -> dict:
    timeframe = {"key": key} if key else {"start": start, "end": end}
    attrs: dict[str, Any] = {"statistics": stats, "timeframe": timeframe, "conversion_metric_id": metric, **extra}
    if rtype == "flow-series-report" and interval is not None:
        attrs["interval"] = interval
    return {"data": {"type": rtype, "attributes": attrs}}


def error_of(resp: httpx.Response) -> dict:
    """The single JSON:API error of a response."""
    doc = resp.json()
    assert len(doc["errors"]) == 1, doc
    return doc["errors"][0]
