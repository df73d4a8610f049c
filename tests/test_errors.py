"""One error policy: each flowsync error says whether a task retry can help; ``fail_fast`` is the only mapper."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

import flowsync_provider
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.uploads import UploadRefused
from flowsync_provider.errors import FlowsyncError, fail_fast, is_retryable
from flowsync_provider.hooks.dashboard import DashboardAuthError, DashboardServerError
from flowsync_provider.klaviyo import (
    KlaviyoAuthError,
    KlaviyoConfigError,
    KlaviyoRateLimitExceeded,
    KlaviyoReportQuotaGuard,
    KlaviyoRequestError,
    KlaviyoServerError,
)
from flowsync_provider.storage.base import BucketNotFound, StorageAuthError, StorageConfigError, StorageUnavailable

PACKAGE = Path(flowsync_provider.__file__).parent

PERMANENT = [
    ParamError("days must be at least 1, got 0."),
    UploadRefused("Refusing to upload flows.csv."),
    BucketNotFound("Bucket 'x' not found."),  # a configuration error: the old name matching retried it
    StorageAuthError("key rejected"),
    StorageConfigError("no url"),
    KlaviyoAuthError("401", status=401),
    KlaviyoConfigError("bad revision"),
    KlaviyoRequestError("400", status=400),
    KlaviyoReportQuotaGuard("spent 3", spent=3, endpoint="POST /api/flow-series-reports"),
    DashboardAuthError("401", status=401),
]
TRANSIENT = [
    KlaviyoServerError("503 after 5 attempts", status=503, attempts=5),
    KlaviyoRateLimitExceeded(retry_at=1.0, bucket="reporting"),
    StorageUnavailable("storage down"),
    DashboardServerError("502", status=502),
    OSError("connection reset"),  # not ours: may be transient, Airflow's retries decide
]


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_errors_fail_the_task_without_retries(exc: Exception) -> None:
    assert not is_retryable(exc)
    with pytest.raises(AirflowFailException, match="."), fail_fast():
        raise exc


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_errors_keep_airflow_retries(exc: Exception) -> None:
    assert is_retryable(exc)
    with pytest.raises(type(exc)), fail_fast():
        raise exc


def test_decorator_form_maps_the_same_way() -> None:
    @fail_fast
    def refuse() -> None:
        raise ParamError("uploadId 'a..b' is not a valid object folder.")

    @fail_fast
    def unavailable() -> None:
        raise StorageUnavailable("storage down")

    with pytest.raises(AirflowFailException, match="a..b"):
        refuse()
    with pytest.raises(StorageUnavailable):
        unavailable()


def _error_classes() -> list[type[FlowsyncError]]:
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="flowsync_provider."):
        if ".sandbox" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)

    def walk(cls: type) -> list[type]:
        return [cls, *(c for sub in cls.__subclasses__() for c in walk(sub))]

    return [c for c in walk(FlowsyncError) if c.__module__.startswith("flowsync_provider")]


def test_every_error_class_has_one_root_and_a_boolean_retryable() -> None:
    classes = _error_classes()
    assert len(classes) > 20  # params, uploads, klaviyo, storage, dashboard, snapshots...
    assert all(isinstance(c.retryable, bool) for c in classes)
    # the Klaviyo client's errors are flowsync errors too (one root)
    assert issubclass(KlaviyoAuthError, FlowsyncError)


def test_no_error_handling_matches_class_names() -> None:
    """The retry decision reads ``retryable``; nothing inspects ``type(exc).__name__``."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "__name__" and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "id", "") == "type":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    # type(x).__name__ in messages is fine; it must not sit next to a retry decision
    decisions = [o for o in offenders if "retry" in (PACKAGE / o.split(":")[0]).read_text().split("\n")[
        int(o.split(":")[1]) - 1].lower()]
    assert decisions == []
