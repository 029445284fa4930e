"""The agent's event loop under a flood of connections, on real sockets: bursts are accepted a batch per turn, TLS
connections share one read buffer, and a failed handshake frees its SSL object without the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import socket
import ssl
import threading
import weakref
from collections import Counter

from edgekit.agent.connections import ACCEPT_BATCH, ConnectionLimits
from edgekit.agent.tls import make_self_signed


def guarded_loop() -> asyncio.AbstractEventLoop:
    return ConnectionLimits().loop_class()()


def server_context(folder) -> ssl.SSLContext:
    files = make_self_signed(folder, "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


def test_a_burst_of_connections_is_accepted_a_batch_per_turn():
    """asyncio accepts up to the listen backlog in one turn, while every request already read waits for it."""
    loop = guarded_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=256)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(100)]  # waiting in the listen queue
    turn, accepted_in_turn = [0], []

    def tick() -> None:
        turn[0] += 1
        loop.call_soon(tick)

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            accepted_in_turn.append(turn[0])

    async def main() -> None:
        server = await loop.create_server(Recorder, sock=listener, backlog=256)
        loop.call_soon(tick)
        while len(accepted_in_turn) < len(clients):
            await asyncio.sleep(0.001)
        server.close()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
        for client in clients:
            client.close()
    per_turn = Counter(accepted_in_turn)
    assert max(per_turn.values()) == ACCEPT_BATCH and len(per_turn) >= len(clients) // ACCEPT_BATCH


def test_a_failed_handshake_frees_its_ssl_object_without_the_collector(tmp_path):
    loop = guarded_loop()
    gc.disable()  # the SSL object must go by reference counting alone
    try:
        async def main() -> weakref.ref:
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=server_context(tmp_path))
            client = socket.create_connection(server.sockets[0].getsockname())
            try:
                while not loop.handshaking:
                    await asyncio.sleep(0.001)
                (transport,) = loop.handshaking
                sslobj = weakref.ref(transport._ssl_protocol._sslobj)
                client.sendall(b"GET /v1/health HTTP/1.1\r\n\r\n")  # plain HTTP: the handshake fails
                for _ in range(500):
                    if not loop.handshaking and sslobj() is None:
                        break
                    await asyncio.sleep(0.01)
                return sslobj
            finally:
                client.close()
                server.close()

        sslobj = loop.run_until_complete(main())
        assert sslobj() is None and not loop.handshaking
    finally:
        gc.enable()
        loop.close()


def test_tls_connections_sharing_the_read_buffer_keep_their_own_bytes(tmp_path):
    """Four clients send 2 MB each at once over TLS; each gets back the sha256 of exactly what it sent."""
    loop = guarded_loop()
    context = server_context(tmp_path)

    class Hasher(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport, self.hash, self.left = transport, hashlib.sha256(), 2 << 20

        def data_received(self, data: bytes) -> None:
            self.hash.update(data)
            self.left -= len(data)
            if self.left == 0:
                self.transport.write(self.hash.hexdigest().encode())

    async def start() -> asyncio.Server:
        return await loop.create_server(Hasher, "127.0.0.1", 0, ssl=context)

    server = loop.run_until_complete(start())
    address = server.sockets[0].getsockname()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    answers: dict[int, tuple[str, str]] = {}

    def send(index: int) -> None:
        payload = bytes([index]) * 1000 + hashlib.sha256(str(index).encode()).digest() * ((2 << 20) // 32)
        payload = payload[:2 << 20]
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with client.wrap_socket(socket.create_connection(address, timeout=30)) as sock:
            sock.sendall(payload)
            answers[index] = (sock.recv(64).decode(), hashlib.sha256(payload).hexdigest())

    try:
        senders = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(60)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert len(answers) == 4 and all(got == sent for got, sent in answers.values())
