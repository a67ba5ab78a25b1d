"""A small asyncio HTTP/1.1 client: exactly what the gateway's JSON API needs.

The SDK has no dependencies, so it speaks HTTP itself over
``asyncio.open_connection``: one request per exchange on keep-alive
connections kept in a pool bounded in size, responses framed by
Content-Length, chunked encoding or the end of the connection. Redirects are
never followed: the caller gets the 3xx and the bearer token never leaves
for another address.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import sys
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ConnectionPool", "Response", "Stream", "TransportError"]

# A header line or a whole header block larger than this is refused; the
# gateway's own headers are a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128
# Like the Go client: a page of 1000 metadata entries with 64 labels each
# stays well below it, and a broken or hostile server cannot exhaust memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
# An idle connection older than this is closed rather than reused: well below
# the gateway's IdleTimeout (120 s) and common proxies' 60 s, so a request is
# hardly ever sent on a connection the other side is closing.
IDLE_LIMIT = 30.0
# The most a streamed body hands over per read: an event is a few dozen bytes.
STREAM_READ_BYTES = 64 * 1024
# Methods that may be sent again when a reused connection turns out to have
# been closed before any answer arrived. Never a write, not even one with
# If-Match: the gateway may have received and applied it before the
# connection died, and a replay would apply it twice, or with If-Match answer
# 412 for a write that was in fact applied. The caller decides (see
# Unreachable).
_REPLAYABLE = frozenset({"GET", "HEAD"})

_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")

_log = logging.getLogger("secretgate")

T = TypeVar("T")


class TransportError(Exception):
    """No complete HTTP answer: connect, TLS, timeout, or a malformed response."""


class _Stale(Exception):
    """The connection ended before a single byte of the answer arrived."""


@dataclass
class Response:
    """One HTTP answer, its body read in full."""

    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; repeated headers joined by ", "
    body: bytes


if sys.version_info >= (3, 11):

    async def _bounded(aw: Awaitable[T], seconds: float | None) -> T:
        async with asyncio.timeout(seconds):
            return await aw

else:  # asyncio.timeout is new in 3.11; wait_for bounds the same way.

    async def _bounded(aw: Awaitable[T], seconds: float | None) -> T:
        return await asyncio.wait_for(aw, seconds)


class _Connection:
    """One keep-alive connection. Only one exchange uses it at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        """Whether an idle connection may carry another request."""
        return (
            not self.reader.at_eof()
            and self.reader.exception() is None
            and not self.writer.is_closing()
            and now - self.idle_since < IDLE_LIMIT
        )

    def abort(self) -> None:
        """Drop the connection at once (after an error or a cancellation)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close the connection, giving TLS a moment to say goodbye."""
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (OSError, asyncio.TimeoutError):
            self.abort()

    async def exchange(self, method: str, head: bytes, body: bytes | None) -> tuple[Response, bool]:
        """Send one request and read its answer; also say whether the
        connection may be reused."""
        try:
            # The body is handed to the transport without waiting for it to
            # drain: a server may answer before reading it all (413), and
            # that answer must be read rather than lost to a failed write.
            self.writer.write(head + body if body else head)
            first = await self.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise TransportError("the gateway closed the connection in the middle of its answer") from exc
            raise _Stale() from exc
        status, reason, version, headers = await self._answer_head(first)
        body_out, keep = await self._body(method, status, version, headers)
        # An answer that came before the whole request was written (413)
        # leaves the connection in an unknown state.
        keep = keep and self.writer.transport.get_write_buffer_size() == 0
        return Response(status, reason, headers, body_out), keep

    async def _answer_head(self, first: bytes) -> tuple[int, str, str, dict[str, str]]:
        """The status line (already read as ``first``) and headers of the
        final answer, after any interim ones."""
        status, reason, version = _status_line(first)
        headers = await self._headers()
        while 100 <= status < 200:
            # Interim answers (100 Continue, 103 Early Hints) precede the real one.
            status, reason, version = _status_line(await self._line())
            headers = await self._headers()
        return status, reason, version, headers

    async def _body(self, method: str, status: int, version: str, headers: dict[str, str]) -> tuple[bytes, bool]:
        """The whole body, and whether the answer lets the connection be reused."""
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        if method == "HEAD" or status in (204, 304):
            return b"", keep
        if "transfer-encoding" in headers:
            if _is_chunked(headers):
                return await self._chunked(), keep
            return await self._until_eof(), False
        if "content-length" in headers:
            return await self.reader.readexactly(_content_length(headers["content-length"])), keep
        return await self._until_eof(), False

    async def _line(self) -> bytes:
        line = await self.reader.readuntil(b"\n")
        return line.rstrip(b"\r\n")

    async def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        size = 0
        for _ in range(MAX_HEADERS + 1):
            line = await self._line()
            if not line:
                return headers
            size += len(line)
            if size > MAX_HEADER_BYTES:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise TransportError("malformed header line in the answer")
            key, value = name.lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raise TransportError(f"the answer's headers exceed {MAX_HEADERS} lines or {MAX_HEADER_BYTES} bytes")

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = _chunk_size(await self._line())
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise TransportError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            parts.append(await self.reader.readexactly(size))
            if await self._line():
                raise TransportError("malformed chunk in the answer")
        await self._headers()  # trailers, which the API never sends; skipped
        return b"".join(parts)

    async def _until_eof(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while chunk := await self.reader.read(65536):
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise TransportError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            parts.append(chunk)
        return b"".join(parts)


def _status_line(line: bytes) -> tuple[int, str, str]:
    parts = line.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not re.fullmatch(r"[1-5][0-9][0-9]", parts[1]):
        raise TransportError("the answer is not HTTP/1.x")
    return int(parts[1]), parts[2] if len(parts) == 3 else "", parts[0]


def _is_chunked(headers: dict[str, str]) -> bool:
    return headers["transfer-encoding"].lower().rsplit(",", 1)[-1].strip() == "chunked"


def _chunk_size(line: bytes) -> int:
    size_field = line.split(b";", 1)[0].strip()
    if not _CHUNK_SIZE.fullmatch(size_field):
        raise TransportError("malformed chunk size in the answer")
    return int(size_field, 16)


def _content_length(value: str) -> int:
    # Repeated headers were joined: identical copies are allowed (RFC 9110).
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not _CONTENT_LENGTH.fullmatch(next(iter(values))):
        raise TransportError("malformed Content-Length in the answer")
    length = int(values.pop())
    if length > MAX_BODY_BYTES:
        raise TransportError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
    return length


class Stream:
    """A 200 answer whose body is read as it arrives (an event stream), on a
    connection of its own: it never holds one of the pool's slots, which it
    would keep for hours, and is never reused. ``close`` drops it at once,
    and needs no await, so that an abandoned stream can be dropped when it
    is garbage-collected."""

    def __init__(self, conn: _Connection, status: int, reason: str, headers: dict[str, str], owner: ConnectionPool):
        self.status = status
        self.reason = reason
        self.headers = headers
        self._conn = conn
        self._owner = owner
        self._chunked = "transfer-encoding" in headers and _is_chunked(headers)
        # Bytes left: of the current chunk when chunked, of the body when it
        # has a Content-Length, None when the body ends with the connection.
        self._left: int | None = 0 if self._chunked else None
        if not self._chunked and "transfer-encoding" not in headers and "content-length" in headers:
            self._left = _content_length(headers["content-length"])
        self._crlf_due = False  # a chunk's data was read, not the CRLF after it
        self._ended = False
        self.closed = False

    async def read(self) -> bytes:
        """The next bytes of the body, as soon as some have arrived; b"" at
        its end. A body cut off raises TransportError.

        Cancelling a read loses nothing: each await either completes or
        consumes no byte, and state changes only after it completes."""
        if self._ended or self.closed:
            return b""
        try:
            if self._chunked:
                return await self._read_chunked()
            if self._left is None:
                data = await self._conn.reader.read(STREAM_READ_BYTES)
                self._ended = not data
                return data
            if self._left == 0:
                self._ended = True
                return b""
            data = await self._conn.reader.read(min(self._left, STREAM_READ_BYTES))
            if not data:
                raise TransportError("the gateway closed the connection in the middle of its answer")
            self._left -= len(data)
            return data
        except (EOFError, OSError, asyncio.LimitOverrunError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc

    async def _read_chunked(self) -> bytes:
        assert self._left is not None
        if self._left == 0:
            if self._crlf_due:
                if await self._conn._line():
                    raise TransportError("malformed chunk in the answer")
                self._crlf_due = False
            size = _chunk_size(await self._conn._line())
            if size == 0:
                # Trailers are not read: the connection is not reused.
                self._ended = True
                return b""
            self._left = size
        data = await self._conn.reader.read(min(self._left, STREAM_READ_BYTES))
        if not data:
            raise TransportError("the gateway closed the connection in the middle of its answer")
        self._left -= len(data)
        self._crlf_due = self._left == 0
        return data

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self._owner._streams.discard(self)
            self._conn.abort()


class ConnectionPool:
    """Keep-alive connections to one host, at most ``max_connections`` of
    them in use at once; concurrent requests beyond that wait for a free one.

    A pool belongs to the event loop it was first used in, like the asyncio
    streams it holds.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int = 10,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._host_header = _host_header(host, port, ssl_context is not None)
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._streams: set[Stream] = set()
        # Closes this pool's connections when the loop shuts down (see _bind).
        self._watcher: AsyncGenerator[None, None] | None = None

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("the secretgate Client is closed")
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    "a secretgate Client belongs to the event loop it was first used in; make one per loop"
                )
            # First use, or the previous loop has ended (a synchronous script
            # calling asyncio.run() for each step with one module-level
            # client): nothing of that loop can be used any more.
            self._bind(loop)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make the pool the given loop's.

        A client made at module level and never closed (the product SDK's
        way) still must not leave its kept-alive connections open when the
        loop ends: their transports would then be collected after the loop
        is closed, with a ResourceWarning, and could no longer be closed
        properly. The loop gives no callback for its end, but it does close
        the asynchronous generators still suspended when it shuts down
        (asyncio.run, asyncio.Runner and loop.shutdown_asyncgens do so, while
        the loop still runs). One such generator, suspended from here on,
        closes the connections then. It holds the pool weakly: a client
        dropped unclosed while its loop runs is collected as before, its
        connections closed by asyncio (with a ResourceWarning, as for any
        resource left unclosed)."""
        self._loop = loop
        self._slots = asyncio.Semaphore(self._max_connections)
        # Connections of a loop that closed without shutting down cannot be
        # closed any more; they are only forgotten.
        self._idle.clear()
        self._streams.clear()
        watcher = _close_at_loop_end(weakref.ref(self), loop)
        try:
            # Runs the generator up to its yield without a suspension: the
            # loop's first-iteration hook registers it now.
            watcher.asend(None).__await__().send(None)
        except StopIteration:
            pass
        self._watcher = watcher

    async def _loop_ending(self) -> None:
        """Close the streams and the idle connections: the loop is shutting
        down, and no request is in flight any more (asyncio.run has cancelled
        every task). The pool stays usable in another loop."""
        self._watcher = None
        for stream in list(self._streams):
            stream.close()
        idle, self._idle = list(self._idle), deque()
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
        # An abort leaves the socket's release to the next loop iteration.
        await asyncio.sleep(0)

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        """Send one request and return its answer.

        ``timeout`` bounds everything: waiting for a free connection,
        connecting, TLS, sending and reading. Any failure to get a complete
        answer raises TransportError.
        """
        self._check()
        head = _request_head(method, target, self._host_header, headers, body)
        try:
            return await _bounded(self._send(method, head, body), timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"no complete answer within {timeout} s") from None
        except (OSError, EOFError, asyncio.LimitOverrunError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc

    async def stream(
        self, target: str, headers: Sequence[tuple[str, str]], timeout: float | None
    ) -> Response | Stream:
        """Send a GET on a new connection and return, for a 200, its answer
        as a Stream whose body is read as it arrives; for any other status,
        the whole answer (an error to report), the connection closed.

        ``timeout`` bounds connecting, TLS, sending and reading the head
        (and the body of an answer that is not 200); TransportError as for
        ``request``."""
        self._check()
        head = _request_head("GET", target, self._host_header, headers, None)
        try:
            return await _bounded(self._open_stream(head), timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"no answer within {timeout} s") from None
        except (OSError, EOFError, asyncio.LimitOverrunError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc

    async def _open_stream(self, head: bytes) -> Response | Stream:
        conn = await self._connect()
        try:
            conn.writer.write(head)
            status, reason, version, headers = await conn._answer_head(await conn.reader.readuntil(b"\n"))
            if status != 200:
                body, _ = await conn._body("GET", status, version, headers)
                conn.abort()
                return Response(status, reason, headers, body)
            stream = Stream(conn, status, reason, headers, self)
        except BaseException:
            # An error, a timeout or a cancellation before the stream is
            # handed over: nobody else could ever close this connection.
            conn.abort()
            raise
        if self._closed:  # closed while this stream was being opened
            stream.close()
            raise RuntimeError("the secretgate Client is closed")
        self._streams.add(stream)
        return stream

    async def _send(self, method: str, head: bytes, body: bytes | None) -> Response:
        async with self._slots:
            conn = self._take_idle()
            if conn is not None:
                try:
                    return await self._exchange(conn, method, head, body)
                except _Stale:
                    if method not in _REPLAYABLE:
                        raise TransportError("the connection was closed before the gateway answered") from None
                    _log.debug("reused connection was closed by the gateway; retrying on a new one")
            conn = await self._connect()
            try:
                return await self._exchange(conn, method, head, body)
            except _Stale:
                raise TransportError("the gateway closed the connection without answering") from None

    async def _exchange(self, conn: _Connection, method: str, head: bytes, body: bytes | None) -> Response:
        try:
            response, keep = await conn.exchange(method, head, body)
        except BaseException:
            # Errors, timeouts and cancellations alike leave the connection
            # mid-exchange: it can never be reused.
            conn.abort()
            raise
        if keep and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            await conn.close()
        return response

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used is the least likely to be stale
            if conn.usable(now):
                return conn
            conn.abort()
        return None

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
            limit=MAX_HEADER_BYTES,
        )
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        """Close the idle connections and the streams; those in use close
        when their exchange ends. Later requests raise RuntimeError."""
        self._closed = True
        for stream in list(self._streams):
            stream.close()
        idle, self._idle = list(self._idle), deque()
        await asyncio.gather(*(conn.close() for conn in idle))
        watcher, self._watcher = self._watcher, None
        if watcher is not None and self._loop is asyncio.get_running_loop():
            # Its work is done; finished now, the loop forgets it.
            await watcher.aclose()


async def _close_at_loop_end(
    pool_ref: weakref.ref[ConnectionPool], loop: asyncio.AbstractEventLoop
) -> AsyncGenerator[None, None]:
    """Suspended until ``loop`` closes it as it shuts down; then closes the
    pool's connections (see ConnectionPool._bind)."""
    try:
        yield
    finally:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        pool = pool_ref()
        # Closed by anything but its own running loop (a loop without
        # asynchronous generator hooks, at interpreter exit), it cannot
        # await, and has no transport it could still close. A pool that
        # moved on to another loop, or was closed, has another watcher or
        # none.
        if running is loop and pool is not None and pool._loop is loop and pool._watcher is not None:
            await pool._loop_ending()


def _host_header(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


def _request_head(
    method: str, target: str, host: str, headers: Sequence[tuple[str, str]], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name} holds a line break or NUL")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
