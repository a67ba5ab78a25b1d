"""Test support: this checkout's package on sys.path, and a tiny scripted
HTTP/1.1 server on 127.0.0.1 for the SDK's offline tests.

Every test module imports this module before ``secretgate``, so that
``python3 -m unittest discover -s sdk/python/tests`` tests the code next to
it, installed or not, with or without PYTHONPATH.

The server speaks just enough HTTP to answer the client with canned bytes,
so the tests can produce what a real gateway rarely does: chunked bodies,
bodies ended by closing, closed keep-alive connections, silence, event
streams cut off or split anywhere.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_CHECKOUT = str(Path(__file__).resolve().parent.parent)
if _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Request:
    """One request as the stub received it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # 1 for the first connection accepted, 2 for the next...
    index: int  # 0 for the first request on its connection


# An answer is the raw bytes to send, or None to close the connection
# without answering. The stub closes after an answer that says
# "Connection: close" or has neither Content-Length nor chunked framing.
# A streamed answer is an async iterator of the pieces to send, each written
# and drained before the next is asked for; the connection closes when it
# ends, or when the client hangs up (counted in StubServer.hangups).
Answer = bytes | None | AsyncIterator[bytes]
Handler = Callable[[Request], Answer | Awaitable[Answer]]


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str = "OK",
    length: bool = True,
) -> bytes:
    """Raw bytes of an HTTP/1.1 answer; ``length=False`` omits Content-Length."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


SSE_HEAD = answer(
    200, headers=[("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")], length=False
)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (b"" gives the last chunk)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def sse(index: int, kind: str, project: str = "payments", name: str = "db", version: int = 1) -> bytes:
    """One event as the gateway writes it."""
    data: dict[str, object] = {"project": project, "index": index}
    if kind != "resync":
        data = {"project": project, "name": name, "version": version, "index": index}
    return f"id: {index}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def json_answer(status: int, obj: object, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """An answer with a JSON body."""
    return answer(status, json.dumps(obj).encode(), [("Content-Type", "application/json"), *headers])


def error_answer(status: int, code: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """An answer with the gateway's error envelope."""
    return json_answer(status, {"error": {"code": code, "message": message}}, headers)


METADATA = {
    "project": "default",
    "name": "db",
    "keys": ["password", "user"],
    "version": 3,
    "labels": {"env": "prod"},
    "created_at": "2025-06-01T09:00:00.123456789Z",
    "updated_at": "2025-06-01T10:00:00Z",
}


def _closes(out: bytes) -> bool:
    """Whether the server must close after this answer, as HTTP says: it
    announced it, or the body has no length and ends with the connection."""
    head = out.split(b"\r\n\r\n", 1)[0].lower()
    framed = b"\r\ncontent-length:" in head or b"\r\ntransfer-encoding:" in head
    return b"\r\nconnection: close" in head or not framed


class StubServer:
    """Serves answers from ``handler``; records every request and counts
    connections and the most requests in flight at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.hangups = 0  # streamed answers the client stopped reading by closing
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> StubServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and end every connection."""
        assert self._server is not None
        self._server.close()
        # Connections still open (a handler that never answers) end here.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for index in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in filter(None, header_lines):
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                req = Request(method, target, headers, body, conn, index)
                self.requests.append(req)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    out = self.handler(req)
                    if inspect.isawaitable(out):
                        out = await out
                finally:
                    self.in_flight -= 1
                if out is None:
                    break
                if not isinstance(out, bytes):
                    await self._stream(out, reader, writer)
                    break
                writer.write(out)
                await writer.drain()
                if _closes(out):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the stub is shutting down; asyncio would log a cancelled connection task
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _stream(
        self, pieces: AsyncIterator[bytes], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send pieces as the iterator yields them, until it ends or the
        client hangs up, whichever comes first."""
        # The client sends nothing more on a stream's connection: a read
        # returns only when it closes.
        hangup = asyncio.ensure_future(reader.read(1))
        piece: asyncio.Future[bytes] | None = None
        try:
            while True:
                piece = asyncio.ensure_future(pieces.__anext__())
                await asyncio.wait({piece, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if hangup.done():
                    self.hangups += 1
                    return
                try:
                    data = piece.result()
                except StopAsyncIteration:
                    return
                writer.write(data)
                await writer.drain()
        finally:
            for task in (piece, hangup):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (piece, hangup) if t is not None), return_exceptions=True)
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()
