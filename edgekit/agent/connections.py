"""Connection limits uvicorn lacks: a deadline for a request's headers, and a cap on connections that wait for one.

uvicorn closes a kept-alive connection after ``timeout_keep_alive`` but waits forever for the headers of a
connection's first request, so half-open connections (connect, send nothing or half a header) pile up. Here each
connection that has no request in progress must finish a request's headers within ``HEADER_TIMEOUT_S``, and when
more than ``MAX_IDLE_CONNECTIONS`` wait for headers at once, the one that has waited longest is closed: first
among connections that never sent a whole request (a flood of half-open ones), only then among kept-alive ones
that did (real clients between two requests). Its
``limit_concurrency`` is not used: it counts those idle connections too and answers real requests 503.
"""

from __future__ import annotations

import asyncio
import math
import resource
import socket
import traceback
from asyncio import selector_events, sslproto
from collections import OrderedDict
from dataclasses import dataclass

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_IDLE_CONNECTIONS = 1024
HEADER_BYTES = 16 * 1024  # h11's cap on a request's head (request line + headers)
KEEP_ALIVE_S = 5.0
WANTED_OPEN_FILES = 8192
MAX_HANDSHAKES = 1024  # TLS connections still in their handshake at once; past it the oldest is dropped
TLS_READ_BUFFER = 32 * 1024  # one per loop (asyncio: 256 KiB per connection, allocated before the handshake)
ACCEPT_BATCH = 16  # connections accepted per turn of the loop; the kernel's listen queue holds the rest


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = HEADER_TIMEOUT_S
    max_idle_connections: int = MAX_IDLE_CONNECTIONS
    keep_alive_s: float = KEEP_ALIVE_S
    header_bytes: int = HEADER_BYTES

    def uvicorn_settings(self) -> dict:
        """The ``uvicorn.Config`` arguments that apply these limits."""
        protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": self})
        return {"http": protocol, "timeout_keep_alive": self.keep_alive_s,
                "h11_max_incomplete_event_size": self.header_bytes}

    def loop_class(self) -> type:
        """The event loop to run the server on (``GuardedLoop`` with these limits)."""
        return type("GuardedLoop", (GuardedLoop,), {"limits": self})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a header deadline and a cap on idle connections (per server)."""

    limits = ConnectionLimits()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        handshaking = getattr(self.loop, "handshaking", None)  # a TLS connection: its handshake is done
        if handshaking is not None:
            handshaking.pop(transport, None)
        super().connection_made(transport)
        self._header_timer = None
        self._wait_for_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # answered and closing (a refused body still arriving): nothing to parse
            return
        super().data_received(data)
        if self._in_request():
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            self._wait_for_headers()

    # -- the idle set ---------------------------------------------------------------------------------

    def _idle(self) -> tuple[OrderedDict, OrderedDict]:
        """The connections waiting for headers: (never sent a request, kept alive after one), oldest first."""
        idle = getattr(self.server_state, "edgekit_idle", None)
        if idle is None:
            idle = self.server_state.edgekit_idle = (OrderedDict(), OrderedDict())
        return idle

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _wait_for_headers(self) -> None:
        self._stop_waiting()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_too_late)
        fresh, kept = self._idle()
        (kept if self.cycle is not None else fresh)[self] = None
        while len(fresh) + len(kept) > self.limits.max_idle_connections:
            oldest, _ = (fresh or kept).popitem(last=False)
            oldest._close()

    def _stop_waiting(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        for idle in self._idle():
            idle.pop(self, None)

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if not self._in_request():
            self._close()

    def _close(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()


class _LeanSSLProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, cheap per connection: it reads into one buffer shared by the loop (data
    is copied into the SSL object's memory BIO as soon as it is read, so nothing else needs it), and a lost
    connection frees its SSL object at once. asyncio gives each connection a 256 KiB buffer and keeps the SSL object
    until the collector breaks the cycle a failed handshake leaves (exception, traceback, waiter, protocol), which
    it reaches late: bench/agent_load.py --tls grew the agent by 160+ MB."""

    max_size = TLS_READ_BUFFER  # a TLS record carries at most 16 KiB, so 32 KiB reads lose nothing

    def __init__(self, loop: GuardedLoop, *args, **kwargs):
        super().__init__(loop, *args, **kwargs)
        self._ssl_buffer, self._ssl_buffer_view = loop.tls_read_buffer

    def _on_handshake_complete(self, handshake_exc: Exception | None) -> None:
        super()._on_handshake_complete(handshake_exc)
        if handshake_exc is not None:  # the waiter keeps its traceback, whose frames hold the SSL object
            traceback.clear_frames(handshake_exc.__traceback__)

    def connection_lost(self, exc: Exception | None) -> None:
        """A connection gone during its handshake (a failed one) also leaves the loop's list at once."""
        handshaking = getattr(self._loop, "handshaking", None)
        if handshaking is not None:
            handshaking.pop(self._app_transport, None)
        super().connection_lost(exc)
        self._sslobj = None  # every later use is guarded by the state (UNWRAPPED now)


class GuardedLoop(asyncio.SelectorEventLoop):
    """An event loop that stays responsive under a flood of connections: it accepts at most ``ACCEPT_BATCH`` of
    them per turn (asyncio accepts up to the listen backlog, 2048 for uvicorn, in one turn while every request
    waits), and its TLS connections cost little before their handshake: a handshake deadline of the header timeout
    (asyncio's default is 60 s), a shared 32 KiB read buffer (256 KiB per connection by default), and at most
    ``MAX_HANDSHAKES`` handshakes at once (the oldest dropped)."""

    limits = ConnectionLimits()

    def __init__(self) -> None:
        super().__init__()
        self.handshaking: OrderedDict = OrderedDict()
        buffer = bytearray(TLS_READ_BUFFER)
        self.tls_read_buffer = (buffer, memoryview(buffer))

    async def create_server(self, *args, **kwargs):
        if kwargs.get("ssl") is not None and kwargs.get("ssl_handshake_timeout") is None:
            kwargs["ssl_handshake_timeout"] = self.limits.header_timeout_s
        return await super().create_server(*args, **kwargs)

    def _accept_connection(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100, *timeouts):
        super()._accept_connection(protocol_factory, sock, sslcontext, server, min(backlog, ACCEPT_BATCH), *timeouts)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                            server_hostname=None, extra=None, server=None, **timeouts):
        if not server_side:
            return super()._make_ssl_transport(rawsock, protocol, sslcontext, waiter, server_side=server_side,
                                               server_hostname=server_hostname, extra=extra, server=server,
                                               **timeouts)
        ssl_protocol = _LeanSSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname, **timeouts)
        selector_events._SelectorSocketTransport(self, rawsock, ssl_protocol, extra=extra, server=server)
        transport = ssl_protocol._app_transport
        self.handshaking[transport] = None
        while len(self.handshaking) > MAX_HANDSHAKES:
            self.handshaking.popitem(last=False)[0].abort()
        return transport


def defer_accept(sock: socket.socket, limits: ConnectionLimits) -> None:
    """Linux: the kernel hands a connection to the agent only once its first bytes arrive (within the header
    deadline), so a connection that never sends anything costs the agent nothing at all."""
    if hasattr(socket, "TCP_DEFER_ACCEPT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, math.ceil(limits.header_timeout_s)))


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Lift this process's soft limit on open files towards ``wanted`` (within the hard limit); the new soft limit.

    Each connection is a file: at the usual 1024, a burst of connections makes accept() fail for everyone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
