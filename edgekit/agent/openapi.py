"""What the agent's OpenAPI document declares beyond FastAPI's defaults: every error status it answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """Every error answer: the agent's own carry a sentence, FastAPI's request validation a list of errors."""
    detail: str | list[dict[str, Any]]


ERRORS = {400: "unparsable JSON body, or a model that does not load", 401: "missing or wrong bearer token",
          404: "no such artifact", 411: "Content-Length missing", 413: "body over the size limit",
          415: "not an ONNX or TFLite model", 422: "invalid request, malformed digest or sha256 mismatch",
          429: "busy with other model runs; see Retry-After", 502: "the model's process failed"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation answers."""
    return {status: {"model": Problem, "description": ERRORS[status]} for status in statuses}


PUT_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
