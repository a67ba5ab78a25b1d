"""Following a project's changes: ``GET /v1/projects/{project}/events``,
Server-Sent Events, as the Go client's ``Watch`` (sdk/client/watch.go) does.

The stream is read in the caller's task, as it iterates: no background task,
so nothing is left running when the caller stops, and an event is read from
the connection only when the caller asks for one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from ._http import Stream, TransportError, _bounded
from .errors import SecretgateError, Unavailable, Unreachable
from .models import Event

__all__ = ["EventStream"]

# Backoff between reconnections, and how long a stream may stay silent: the
# gateway sends a comment every 15 s, so a longer silence means a connection
# that died without a FIN (a NAT or a proxy forgot it). Read when a watch
# starts, so that tests can shorten them.
MIN_BACKOFF = 0.5
MAX_BACKOFF = 30.0
IDLE_TIMEOUT = 45.0

# One event's data, or one line, larger than this is a broken stream, not a
# reason to buffer without end: the gateway's events are a few dozen bytes.
MAX_EVENT_BYTES = 1 << 20

_EOL = re.compile(rb"\r\n?|\n")
# What a Last-Event-ID header line can carry back. The gateway's ids are
# integers; the standard ignores an id holding NUL, and this client any id
# that could not be sent in a header (NUL among them).
_SENDABLE_ID = re.compile(r"[\t\x20-\x7e]*")

_log = logging.getLogger("secretgate")
# The wait between reconnections; tests record the waits instead.
_sleep = asyncio.sleep
# Jitter needs no secrecy, but this package takes randomness from the OS only.
_rng = random.SystemRandom()


class _ProtocolError(Exception):
    """The stream is not an event stream the client can read."""


@dataclass
class _Message:
    """One dispatched event of the stream, before it is decoded."""

    kind: str
    data: str


class _Parser:
    """The event stream format of the WHATWG HTML standard ("Server-sent
    events", "Interpreting an event stream"), fed bytes as they arrive.

    Lines end with CRLF, LF or a lone CR; a CR at the end of one read may be
    followed by the LF of the same line end at the start of the next, which
    is then skipped, so that no event waits for the next read to dispatch.
    """

    def __init__(self, last_id: str | None) -> None:
        # The "last event ID string": set when an event is dispatched (a
        # blank line), so an event cut off by a broken connection comes
        # again after a reconnection instead of being skipped.
        self.last_id = last_id
        self.reset()

    def reset(self) -> None:
        """Forget a partly received event: a new connection starts afresh."""
        self._buf = b""
        self._after_cr = False
        self._first_line = True
        self._kind = ""
        self._data: list[str] = []
        self._data_size = 0
        self._id_buffer = self.last_id

    def feed(self, chunk: bytes) -> tuple[list[_Message], bool]:
        """The events that ``chunk`` completes, and whether it completed a
        line (anything, a comment included, proves the stream alive)."""
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = False
        buf = self._buf + chunk if self._buf else chunk
        out: list[_Message] = []
        start = 0
        lines = 0
        for m in _EOL.finditer(buf):
            lines += 1
            self._line(buf[start : m.start()], out)
            start = m.end()
        self._after_cr = start > 0 and buf[start - 1 : start] == b"\r"
        self._buf = buf[start:]
        if len(self._buf) > MAX_EVENT_BYTES:
            raise _ProtocolError(f"a line longer than {MAX_EVENT_BYTES} bytes")
        return out, lines > 0

    def _line(self, raw: bytes, out: list[_Message]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            self._dispatch(out)
            return
        if line.startswith(":"):
            return  # a comment: the gateway's keep-alive
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._kind = value
        elif field == "data":
            self._data_size += len(value) + 1
            if self._data_size > MAX_EVENT_BYTES:
                raise _ProtocolError(f"an event larger than {MAX_EVENT_BYTES} bytes")
            self._data.append(value)
        elif field == "id":
            if _SENDABLE_ID.fullmatch(value):
                self._id_buffer = value
        # "retry" and unknown fields are ignored: the backoff is the client's.

    def _dispatch(self, out: list[_Message]) -> None:
        self.last_id = self._id_buffer
        if self._data:
            out.append(_Message(self._kind or "message", "\n".join(self._data)))
        self._kind = ""
        self._data = []
        self._data_size = 0


def _backoff_delay(d: float) -> float:
    """d with equal jitter, in [d/2, d]: clients dropped together do not come
    back together, yet none comes back at once."""
    return d / 2 + _rng.uniform(0, d / 2)


def _retryable(exc: SecretgateError) -> bool:
    """Whether a failed reconnection may pass by asking again: no answer at
    all, an overloaded or failing gateway. Other answers (400, 401, 403,
    404, a redirect, a stream that is not one) will not change."""
    if isinstance(exc, Unreachable):
        return True
    return exc.status is not None and (exc.status >= 500 or exc.status == 429)


# Opens one stream: (Last-Event-ID or None, timeout) -> a 200 event stream,
# or raises the typed error of the answer (client.Client._open_stream).
Opener = Callable[[str | None, float], Awaitable[Stream]]

_CLOSED = "the secretgate Client is closed"


class EventStream:
    """The changes of a project's secrets as they happen: what
    ``client.secrets.watch(...)`` returns. Iterate it with ``async for``.

    The first connection is made by ``async with`` (or by the first
    iteration), so a refusal or an unreachable gateway raises there:
    ``Unauthenticated``, ``PermissionDenied``, ``NotFound``, ``Unreachable``...
    After that the stream lasts until the caller stops iterating: a dropped
    connection, 45 s of silence (the gateway sends a keep-alive every 15 s),
    a 5xx or a 429 are followed by a reconnection with jittered exponential
    backoff (0.5 s doubling up to 30 s, or the gateway's Retry-After) sending
    ``Last-Event-ID``, so no event is lost; when the gateway no longer holds
    the missed events it sends an ``Event.RESYNC``. A reconnection refused
    for good (401, 403, 404, 400) raises its typed error, which ends the
    iteration. Closing the client ends it too: the next step raises
    RuntimeError.

    Breaking out of the loop drops the connection at once (CPython frees
    the stream there); ``async with`` or ``aclose()`` do so on every
    implementation.
    """

    def __init__(self, path: str, opener: Opener, last_id: str | None, timeout: float | None) -> None:
        self._path = path
        self._open = opener
        self._parser = _Parser(last_id)
        self._min_backoff, self._max_backoff, self._idle = MIN_BACKOFF, MAX_BACKOFF, IDLE_TIMEOUT
        # Opening is bounded like any request of the client; a client without
        # a bound still gives up on a gateway that stays silent as long as a
        # dead stream would.
        self._open_timeout = self._idle if timeout is None else timeout
        self._backoff = self._min_backoff
        self._retry_after: float | None = None
        self._stream: Stream | None = None
        self._deadline = 0.0
        self._pending: deque[Event] = deque()
        self._started = False
        self._ended = False
        self._busy = False
        # A malformed stream's error, raised once the events before it are out.
        self._failure: SecretgateError | None = None

    def __repr__(self) -> str:
        return f"<EventStream {self._path} last_event_id={self._parser.last_id!r}>"

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event received (None before any): the index to
        give ``watch(last_event_id=...)`` to resume in another process."""
        return self._parser.last_id

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._busy:
            # Two readers would interleave reads of one connection.
            raise RuntimeError("an EventStream is iterated by one task at a time")
        self._busy = True
        try:
            while not self._pending:
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                if self._ended:
                    raise StopAsyncIteration
                await self._step()
        except (SecretgateError, RuntimeError):
            self._end()
            raise
        finally:
            self._busy = False
        return self._pending.popleft()

    async def __aenter__(self) -> EventStream:
        if not self._started and not self._ended:
            try:
                await self._connect()
            except (SecretgateError, RuntimeError):
                self._end()
                raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching and drop the connection; iterating ends."""
        self._end()

    def __del__(self) -> None:
        # An abandoned stream (a `break` out of `async for`) must not keep
        # its connection: close needs no await. At interpreter exit the loop
        # may be gone already; then there is nothing left to close.
        try:
            self._end()
        except Exception:  # noqa: BLE001 - a finalizer must not raise
            pass

    def _end(self) -> None:
        self._ended = True
        self._pending.clear()
        self._drop()

    def _drop(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()

    async def _step(self) -> None:
        """Connect, or read what the connection has next."""
        if self._stream is None:
            await (self._reconnect() if self._started else self._connect())
            return
        loop = asyncio.get_running_loop()
        stream = self._stream
        try:
            left = self._deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError
            data = await _bounded(stream.read(), left)
        except asyncio.TimeoutError:
            _log.debug("event stream %s: silent for %s s; reconnecting", self._path, self._idle)
            self._drop()
            return
        except TransportError as exc:
            if stream.closed:  # by the client's aclose, not by this stream
                raise RuntimeError(_CLOSED) from None
            _log.debug("event stream %s broke: %s; reconnecting", self._path, exc)
            self._drop()
            return
        if not data:
            if stream.closed:
                raise RuntimeError(_CLOSED)
            _log.debug("event stream %s ended; reconnecting", self._path)
            self._drop()
            return
        messages: list[_Message] = []
        try:
            messages, alive = self._parser.feed(data)
            for msg in messages:
                self._pending.append(Event.from_json(msg.kind, json.loads(msg.data)))
        except _ProtocolError as exc:
            self._fail(f"the event stream of {self._path} holds {exc}")
            return
        except (ValueError, TypeError):
            # The data is not quoted: it is the server's, not the client's to print.
            self._fail(f"an event of {self._path} does not hold an event object")
            return
        if alive:
            self._deadline = loop.time() + self._idle
        if messages:
            self._backoff = self._min_backoff

    def _fail(self, message: str) -> None:
        """End the stream for good, after the events already decoded: asking
        again would bring the same malformed stream back."""
        self._failure = SecretgateError("invalid_response", 200, message)
        self._drop()
        self._ended = True

    async def _connect(self) -> None:
        self._stream = await self._open(self._parser.last_id, self._open_timeout)
        self._parser.reset()
        self._deadline = asyncio.get_running_loop().time() + self._idle
        self._started = True

    async def _reconnect(self) -> None:
        """Wait, then connect; again while the failure may pass."""
        while True:
            wait = _backoff_delay(self._backoff)
            self._backoff = min(2 * self._backoff, self._max_backoff)
            if self._retry_after is not None and self._retry_after > wait:
                wait = min(self._retry_after, self._max_backoff)
            self._retry_after = None
            await _sleep(wait)
            try:
                await self._connect()
                return
            except SecretgateError as exc:
                if not _retryable(exc):
                    raise
                _log.debug("event stream %s: reconnection failed: %s", self._path, exc)
                if isinstance(exc, Unavailable):
                    self._retry_after = exc.retry_after
