"""What the agent's OpenAPI document declares beyond FastAPI's defaults: every error status it answers, and the
bodies of the routes that read their body themselves."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Problem(BaseModel):
    """Every error answer: one short sentence (``error`` repeats it on the KServe v2 routes, for v2 clients)."""
    detail: str
    error: str | None = None


ERRORS = {400: "a body that cannot be read (not JSON, bad tensors), or a model that does not load",
          401: "missing or wrong bearer token", 404: "no such artifact", 411: "Content-Length missing",
          413: "body over the size limit",
          415: "not an ONNX, TFLite or OpenVINO IR model, or an unsupported Content-Encoding",
          422: "invalid request, malformed digest or sha256 mismatch",
          429: "busy with other model runs; see Retry-After", 502: "the model's process failed"}
SCHEMA_REF = "#/components/schemas/{model}"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation answers."""
    return {status: {"model": Problem, "description": ERRORS[status]} for status in statuses}


PUT_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def json_body(model_name: str, binary: bool = False) -> dict[str, Any]:
    """``openapi_extra`` of a route that parses its JSON body itself (``binary``: or a body with binary tensors)."""
    content = {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model=model_name)}}}
    if binary:
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


def add_schemas(app: FastAPI, models: dict[str, type[BaseModel]]) -> None:
    """Put ``models`` (and the models they use) into the document's components, for ``json_body`` to refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, model in models.items():
            schema = model.model_json_schema(ref_template=SCHEMA_REF)
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
        return document

    app.openapi = openapi
