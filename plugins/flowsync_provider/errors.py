"""One exception root and one retry decision for everything flowsync raises on purpose.

Each error class says whether an Airflow task retry can help (``retryable``): a bad param, a refused
key or an empty-upload guard fails the same way on every try, so retrying only wastes Klaviyo's daily
quota; a 5xx that outlived the client's own retries, or an unavailable store, may pass later.
:func:`fail_fast` is the single place that turns non-retryable errors into Airflow's
``AirflowFailException`` (no retries). No Airflow import at module level: the pure core and the
Klaviyo client raise these errors too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

__all__ = ["FlowsyncError", "fail_fast", "is_retryable"]

F = TypeVar("F", bound=Callable[..., Any])


class FlowsyncError(Exception):
    """Base for every error flowsync raises on purpose (the message is safe to show: no secrets, no PII).

    ``retryable`` is False unless a subclass says otherwise: errors raised on purpose describe a
    request or a configuration, which a retry does not change.
    """

    retryable: ClassVar[bool] = False


def is_retryable(exc: BaseException) -> bool:
    """Whether an Airflow task retry can help: a flowsync error says so; anything unexpected may be transient."""
    if isinstance(exc, FlowsyncError):
        return type(exc).retryable
    return True


@contextmanager
def _failing_fast() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except AirflowFailException:
        raise
    except Exception as exc:
        if not is_retryable(exc):
            raise AirflowFailException(str(exc)) from exc
        raise


def fail_fast(func: F | None = None) -> Any:
    """Non-retryable errors become ``AirflowFailException`` (no task retries); retryable ones propagate.

    Use as a decorator (``@fail_fast`` on ``execute``) or as a context manager (``with fail_fast():``).
    """
    if func is None:
        return _failing_fast()

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _failing_fast():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
