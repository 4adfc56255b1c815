"""The boundary of every activity: typed errors out, the process's ids on its log lines.

Business refusals (``DomainError``) become non-retryable ``ApplicationError``s whose
``type`` is the error's stable code, so workflows branch on it; technical failures
(``SystemUnavailable``) become retryable ``system_unavailable`` errors. While an activity
runs, log records carry its process (the workflow id) and the customer its input names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.errors import DomainError, OutOfStock, SystemUnavailable
from telemetry import log_context

F = TypeVar("F", bound=Callable[..., Any])

TECHNICAL = "system_unavailable"


def to_application_error(exc: Exception) -> ApplicationError | None:
    """The Temporal error for ``exc``, or None when it should propagate as is."""
    if isinstance(exc, DomainError):
        details: list[Any] = []
        if isinstance(exc, OutOfStock):
            details = [exc.shortages]
        return ApplicationError(exc.message, *details, type=exc.code, non_retryable=True)
    if isinstance(exc, SystemUnavailable):
        return ApplicationError(str(exc), type=TECHNICAL, non_retryable=False)
    return None


def _ids(args: tuple[Any, ...]) -> AbstractContextManager[None]:
    """The log context of an activity call: its workflow and the customer of its input."""
    if not activity.in_activity():
        return nullcontext()
    customer = next(
        (c for c in (getattr(a, "customer_id", None) for a in args) if isinstance(c, str)), None
    )
    return log_context(activity.info().workflow_id, customer)


def mapped_errors(fn: F) -> F:
    """Decorate an activity (sync or async) so its errors reach workflows typed and its
    log records carry its process and customer."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                with _ids(args):
                    return await fn(*args, **kwargs)
            except Exception as exc:
                mapped = to_application_error(exc)
                if mapped is None:
                    raise
                raise mapped from exc

        return cast(F, async_wrapper)

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _ids(args):
                return fn(*args, **kwargs)
        except Exception as exc:
            mapped = to_application_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    return cast(F, sync_wrapper)
