"""The OpenAPI document, made to say what the API does (API.md's conventions).

FastAPI's generated document describes its own defaults: validation errors as
``application/json`` ``HTTPValidationError`` and the bearer key as an optional
``authorization`` header parameter. This pass rewrites each operation once, when the
document is first asked for: every error answer is ``application/problem+json`` with the
``Problem`` schema, authenticated operations name the ``bearer`` security scheme and their
401/403, and operations on an id, 404; the API's operations answer 503 when Temporal or
the database is unreachable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.errors import PROBLEM, TITLES
from api.guard import MAX_BODY


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = None


METHODS = ("get", "post", "put", "patch", "delete")
SANDBOX_PATHS = ("/v1/test-clocks", "/v1/sandbox")
REF = {"$ref": "#/components/schemas/Problem"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": REF}}}


def _body_ids(op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The ``…_id`` fields of an operation's JSON body (each may name a missing record)."""
    ref = (
        op.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
    )
    properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
    return sorted(name for name in properties if name.endswith("_id"))


def conform(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``schema`` (FastAPI's document) in place to API.md's conventions."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    generated = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(generated.pop("$defs", {}))
    schemas["Problem"] = generated
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an o2c API key"}
    }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = op.get("parameters", [])
            authenticated = any(
                p.get("in") == "header" and p.get("name", "").lower() == "authorization"
                for p in params
            )
            op["parameters"] = [
                p
                for p in params
                if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")
            ]
            if not op["parameters"]:
                del op["parameters"]
            responses = op.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error("invalid input (the body, a parameter)")
            if authenticated:
                op["security"] = [{"bearer": []}]
                responses["401"] = _error(TITLES[401] + ": no key, or an unknown one")
                responses["403"] = _error(TITLES[403] + ": the key's role is too low")
            if "{" in path:
                responses.setdefault("404", _error("no such id"))
            body_ids = _body_ids(op, schemas)
            if body_ids:
                responses.setdefault(
                    "404", _error(f"an id in the body names nothing: {', '.join(body_ids)}")
                )
            if path.startswith(SANDBOX_PATHS):
                responses.setdefault("404", _error("sandbox features are off (O2C_SANDBOX)"))
            if "requestBody" in op:
                responses["413"] = _error(f"the body is over {MAX_BODY // 1024 // 1024} MiB")
            if path.startswith("/v1/"):
                responses.setdefault("409", _error("the resource's state does not allow it"))
                responses["503"] = {
                    **_error("Temporal or the database is unreachable"),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve the conformed document at ``/openapi.json`` (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = conform(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
