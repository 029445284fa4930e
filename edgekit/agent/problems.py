"""Every error answer of the agent, in one shape: ``{"detail": "one short sentence"}`` (plus ``"error"``, the same
sentence, on the Open Inference Protocol routes, where v2 clients read it).

One handler turns whatever a request body did wrong — not JSON, not UTF-8, nested too deeply, the wrong fields,
tensors that do not fit — into 400 (the body cannot be read) or 422 (it can, but is not a valid request). A
message names where the problem is and what was expected; it never repeats the body's bytes, so no body can make
the error answer itself fail.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .v2_wire import WireError

MAX_ERRORS_SHOWN = 3
MAX_LOC_CHARS = 48


def problem(status: int, detail: str, request: Request, headers: dict[str, str] | None = None) -> Response:
    """An error answer to ``request``. ASCII JSON, so text taken from a request (a field name) cannot break it."""
    path = request.url.path
    body = {"detail": detail, **({"error": detail} if path == "/v2" or path.startswith("/v2/") else {})}
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def validation_summary(errors: list[dict[str, Any]]) -> str:
    """``invalid request: inputs.0.shape: Input should be a valid list; … (2 more)`` from pydantic's errors, without
    their ``input`` (the body itself) or ``ctx``."""
    parts = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p)[:MAX_LOC_CHARS] for p in error.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg", "invalid")))
    more = f" ({len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
    return "invalid request: " + "; ".join(parts) + more


def validate_body(model: type[BaseModel], body: Any) -> BaseModel:
    """``body`` (parsed JSON) as ``model``, or the same ``RequestValidationError`` FastAPI raises for its bodies."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def install_problem_handlers(app: FastAPI) -> None:
    """The agent's error answers: its own ``HTTPException``s, and every malformed request (one handler)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), request, exc.headers)

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(WireError)
    async def malformed(request: Request, exc: Exception) -> Response:
        if isinstance(exc, WireError):
            return problem(400, str(exc), request)
        errors = list(exc.errors())
        unreadable = any(e.get("type") == "json_invalid" for e in errors)
        detail = "the body is not valid JSON" if unreadable else validation_summary(errors)
        if [tuple(e.get("loc", ())) for e in errors] == [("body",)]:
            content_type = request.headers.get("content-type", "none")[:64]
            detail = f"the body must be a JSON object, sent as Content-Type: application/json (not {content_type})"
        return problem(400 if unreadable else 422, detail, request)
