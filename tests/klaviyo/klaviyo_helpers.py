"""Helpers shared by the Klaviyo client tests (MockTransport answers, the unit-test key)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

SECRET = "pk_unit_test_secret_7f3a9c1e5b"


def jsonapi(payload: dict, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(payload).encode(),
        headers={"content-type": "application/vnd.api+json", **(headers or {})},
    )


class Recorder:
    """A MockTransport handler that records requests and answers from a script of callables."""

    def __init__(self, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)
