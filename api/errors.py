"""Every error the API answers, mapped once to RFC 9457 problem+json.

Routes raise domain errors (``NotFound``, ``Conflict`` …), let pydantic reject input, or let
Temporal and database errors rise; the handlers here turn each into the right status with
``type``, ``title``, ``status``, ``detail`` (and ``errors`` for invalid input). Nothing a
client sends reaches the catch-all 500, and no body ever carries a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import DomainError, SystemUnavailable

log = logging.getLogger("o2c.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://o2c.dev/problems/"
RETRY_AFTER = "5"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
    503: "Service unavailable",
}


def _codes() -> dict[str, int]:
    """Domain error code → HTTP status, from the error classes themselves."""
    out: dict[str, int] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        out[cls.code] = cls.status
        todo.extend(cls.__subclasses__())
    return out


class TemporalUnavailable(Exception):
    """Temporal cannot be reached (not started, restarting, network)."""


def problem(
    status: int,
    detail: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    loc: tuple[str | int, ...] = ("body",),
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (code or TITLES.get(status, "error").lower().replace(" ", "_")),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    if status == 422 and "errors" not in body:
        # API.md: invalid input says where; input refused by a rule names its place too.
        body["errors"] = [{"loc": list(loc), "msg": detail}]
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def unavailable(detail: str) -> JSONResponse:
    return problem(503, detail, "unavailable", headers={"Retry-After": RETRY_AFTER})


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid"))} for e in exc.errors()
    ]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return problem(422, "the body is not valid JSON", "malformed_json", errors=errors)
    return problem(422, "the request does not match the schema", "invalid_input", errors=errors)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body the framework could not parse (JSON nested too deep)
        return problem(422, "the body could not be parsed as JSON", "malformed_json")
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers)


def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = exc.status if exc.status < 500 else 409
    return problem(status, exc.message, exc.code, loc=exc.loc)


def _update_failed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WorkflowUpdateFailedError)
    cause: Any = exc.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None)
    if isinstance(cause, ApplicationError):
        status = _codes().get(cause.type or "", 409)
        # A process's refusal may say where, as the schema check does: {"errors": [...]}.
        said = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        where = {"errors": said["errors"]} if status == 422 and "errors" in said else {}
        return problem(status, cause.message, cause.type or "conflict", **where)
    return problem(409, "the process refused the request", "conflict")


def _rpc(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status == RPCStatusCode.NOT_FOUND:  # Updates tell an ended run apart themselves
        return problem(404, "no such process", "not_found")
    if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
        return problem(409, exc.message, "conflict")
    log.warning("temporal error: %s %s", exc.status, exc.message)
    return unavailable("the workflow engine did not answer")


def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable: %s", exc)
    if isinstance(exc, OperationalError):
        return unavailable("the database is unavailable")
    return unavailable(str(exc) or "a dependency is unavailable")


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "an unexpected error occurred; it has been logged", "internal")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(WorkflowUpdateFailedError, _update_failed)
    app.add_exception_handler(RPCError, _rpc)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(SystemUnavailable, _unavailable)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
