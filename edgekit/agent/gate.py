"""The agent's front door, an ASGI middleware in front of FastAPI: the token from the headers first, then the body.

Every route but the two liveness probes needs the bearer token, and the token is checked before one byte of the
body is read: an unauthenticated request is answered 401 (with ``Connection: close``) whatever its body, so
unauthenticated uploads cost nothing. An authenticated body must declare its length within the route's cap (413
before reading when it declares more; 411 for a POST without one) and is counted as it streams, so a chunked or
lying body is stopped at the cap too (413 from whoever reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import token_matches
from .problems import problem

PUBLIC_PATHS = frozenset({"/v1/health", "/v2/health/live"})
CLOSE = {"Connection": "close", "WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class BodyCaps:
    upload_bytes: int  # PUT /v1/artifacts/…
    request_bytes: int  # every other body


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, else None (the first Authorization header counts)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    return None


def declared_length(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.decode("latin-1")
    return None


class RequestGate:
    """Authenticate from the headers, bound the body, then hand the request to ``app``."""

    def __init__(self, app: ASGIApp, token: str | None, caps: BodyCaps):
        self.app = app
        self.token = token
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            status, detail, headers = refusal
            await problem(status, detail, Request(scope), headers)(scope, receive, send)
            return
        cap = self.caps.upload_bytes if scope["method"] == "PUT" else self.caps.request_bytes
        await self.app(scope, counted(receive, cap), send)

    def refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        """Why the request is answered without reading its body, or None."""
        if scope["path"] in PUBLIC_PATHS and scope["method"] in ("GET", "HEAD"):
            return None
        if self.token is not None and not token_matches(bearer_token(scope), self.token):
            return 401, "missing or wrong bearer token", CLOSE
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        cap = self.caps.upload_bytes if scope["method"] == "PUT" else self.caps.request_bytes
        length = declared_length(scope)
        if length is None:  # a chunked PUT streams within the cap; a POST must say its size
            return (411, "Content-Length is required", {"Connection": "close"}) if scope["method"] == "POST" else None
        if not (length.isascii() and length.isdigit()) or len(length) > 18:
            return 400, "Content-Length must be a byte count", {"Connection": "close"}
        if int(length) > cap:
            return 413, f"request body over the {cap} byte limit", {"Connection": "close"}
        return None


def counted(receive: Receive, cap: int) -> Receive:
    """``receive`` that raises 413 once the body passes ``cap`` bytes (whatever Content-Length said)."""
    seen = 0

    async def receive_counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise HTTPException(413, f"request body over the {cap} byte limit", headers={"Connection": "close"})
        return message

    return receive_counted
