"""Offline tests of ``client.secrets.watch`` against the scripted server in
stub.py (the event stream parser is tested in test_watch_parser.py): resync, reconnection with Last-Event-ID and its backoff, the
silence timeout, refusals, and that stopping leaves no connection or task
behind."""

from __future__ import annotations

import asyncio
import gc
import unittest
from collections.abc import AsyncIterator, Callable
from unittest import mock

from stub import (  # first: see stub
    METADATA,
    SSE_HEAD,
    Request,
    StubServer,
    answer,
    chunk,
    error_answer,
    free_port,
    json_answer,
    sse,
)

import secretgate
from secretgate import Client, Event, EventStream, InvalidArgument, SecretgateError
from secretgate import _watch

TOKEN = "sg_watch-token"
# Stands for something the gateway might send that the client must not
# repeat in an error (events never hold a value, but a broken stream might).
CANARY = "CANARY-e3b0c44298fc1c14"
# Generous bound on anything a test waits for: a hang fails, not blocks.
WAIT = 5.0


async def take(events: EventStream, n: int) -> list[Event]:
    """The next n events, within WAIT seconds."""

    async def collect() -> list[Event]:
        return [await events.__anext__() for _ in range(n)]

    return await asyncio.wait_for(collect(), WAIT)


async def drain(events: EventStream, received: list[Event] | None = None) -> None:
    """Iterate to the end (or the error that ends it) within WAIT seconds."""

    async def loop() -> None:
        async for ev in events:
            if received is not None:
                received.append(ev)

    await asyncio.wait_for(loop(), WAIT)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (up to WAIT seconds) for condition to hold."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def stream(*events: bytes, hold: bool = True, end: bytes = b"") -> AsyncIterator[bytes]:
    """A chunked event stream answer: each event in a chunk of its own, then
    (hold) nothing more until the client hangs up, or the connection closes
    after ``end`` (b"" cuts the body off; chunk(b"") ends it properly)."""
    yield SSE_HEAD
    for ev in events:
        yield chunk(ev)
    if hold:
        await asyncio.Event().wait()
    if end:
        yield end


def kinds(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.kind, e.index) for e in events]


class WatchTestCase(unittest.IsolatedAsyncioTestCase):
    """A stub gateway and a client, with reconnections in milliseconds."""

    handler: Callable[[Request], object]

    async def asyncSetUp(self) -> None:
        patcher = mock.patch.multiple(_watch, MIN_BACKOFF=0.002, MAX_BACKOFF=0.01)
        patcher.start()
        self.addCleanup(patcher.stop)

    async def serve(self, handler: Callable[[Request], object], **client_args: object) -> tuple[StubServer, Client]:
        srv = StubServer(handler)  # type: ignore[arg-type]
        await srv.start()
        self.addAsyncCleanup(srv.close)
        client = Client(srv.addr, TOKEN, "payments", **client_args)  # type: ignore[arg-type]
        self.addAsyncCleanup(client.aclose)
        return srv, client


class WatchTest(WatchTestCase):
    async def test_events_arrive_as_they_are_written(self) -> None:
        more = asyncio.Event()

        async def handler(_: Request) -> AsyncIterator[bytes]:
            yield SSE_HEAD
            yield chunk(sse(1, "secret.created", version=1))
            await more.wait()  # the body is far from its end: read it as it comes
            yield chunk(sse(2, "secret.updated", version=2))
            await asyncio.Event().wait()

        srv, client = await self.serve(handler)
        async with client.secrets.watch("db-*") as events:
            (first,) = await take(events, 1)
            self.assertEqual(first, Event("secret.created", "payments", "db", 1, 1))
            more.set()
            (second,) = await take(events, 1)
            self.assertEqual(second, Event("secret.updated", "payments", "db", 2, 2))
            self.assertEqual(events.last_event_id, "2")
        (req,) = srv.requests
        self.assertEqual((req.method, req.target), ("GET", "/v1/projects/payments/events?secrets=db-%2A"))
        self.assertEqual(req.headers["accept"], "text/event-stream")
        self.assertEqual(req.headers["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(req.headers["cache-control"], "no-cache")
        self.assertIn("x-request-id", req.headers)
        self.assertNotIn("last-event-id", req.headers, "from now on unless told otherwise")

    async def test_last_event_id_and_project(self) -> None:
        srv, client = await self.serve(lambda _: stream(sse(6, "secret.deleted", version=0)))
        for start, header in ((5, "5"), (0, "0")):
            with self.subTest(start=start):
                async with client.secrets.watch(project="billing", last_event_id=start) as events:
                    await take(events, 1)
                self.assertEqual(srv.requests[-1].target, "/v1/projects/billing/events")
                self.assertEqual(srv.requests[-1].headers["last-event-id"], header)

    async def test_lines_split_anywhere_across_reads(self) -> None:
        body = (
            b": keep-alive\r\n\r\n"
            + sse(1, "secret.created")
            + b'id: 2\r\nevent: secret.updated\r\ndata: {"project":"payments",\r\ndata: "name":"db",'
            + b'\r\ndata: "version":2,"index":2}\r\n\r\n'
            + b"\r\n: two blank lines dispatch nothing\r\n"
            + sse(3, "resync")
        )

        async def handler(_: Request) -> AsyncIterator[bytes]:
            # Cut the body into chunks at odd places, and every chunk's
            # framing between two writes: lines and chunks end mid-read.
            yield SSE_HEAD
            for start in range(0, len(body), 7):
                framed = chunk(body[start : start + 7])
                yield framed[:2]
                await asyncio.sleep(0.001)
                yield framed[2:]
            await asyncio.Event().wait()

        srv, client = await self.serve(handler)
        async with client.secrets.watch() as events:
            got = await take(events, 3)
        self.assertEqual(
            got,
            [
                Event("secret.created", "payments", "db", 1, 1),
                Event("secret.updated", "payments", "db", 2, 2),
                Event("resync", "payments", "", 0, 3),
            ],
        )
        self.assertEqual(srv.connections, 1)

    async def test_resync_and_unknown_kinds_are_delivered(self) -> None:
        unknown = b'id: 5\nevent: secret.moved\ndata: {"project":"payments","name":"x","index":5}\n\n'
        _, client = await self.serve(lambda _: stream(sse(4, "resync"), unknown))
        async with client.secrets.watch() as events:
            resync, moved = await take(events, 2)
        self.assertEqual(resync, Event(Event.RESYNC, "payments", "", 0, 4))
        self.assertEqual((moved.kind, moved.name), ("secret.moved", "x"))

    async def test_reconnects_with_last_event_id_after_the_stream_ends(self) -> None:
        # Event 3 is cut off on the first connection: its id must not be
        # sent back, or the gateway would never send it again.
        cut = b'id: 3\nevent: secret.updated\ndata: {"project":"payments"'
        endings = {
            "body cut off": stream(sse(1, "secret.created"), sse(2, "secret.updated"), cut, hold=False),
            "last chunk": stream(sse(1, "secret.created"), sse(2, "secret.updated"), cut, hold=False, end=chunk(b"")),
        }
        for how, first in endings.items():
            with self.subTest(how):
                answers = iter([first, stream(sse(3, "secret.updated", version=3))])
                srv, client = await self.serve(lambda _: next(answers))
                async with client.secrets.watch() as events:
                    got = await take(events, 3)
                self.assertEqual(kinds(got), [("secret.created", 1), ("secret.updated", 2), ("secret.updated", 3)])
                self.assertEqual(srv.connections, 2)
                self.assertNotIn("last-event-id", srv.requests[0].headers)
                self.assertEqual(srv.requests[1].headers["last-event-id"], "2")

    async def test_reconnects_after_a_body_ended_by_closing(self) -> None:
        async def unframed(index: int) -> AsyncIterator[bytes]:
            yield answer(200, headers=[("Content-Type", "text/event-stream; charset=utf-8")], length=False)
            yield sse(index, "secret.created")
            if index > 1:
                await asyncio.Event().wait()

        answers = iter([unframed(1), unframed(2)])
        srv, client = await self.serve(lambda _: next(answers))
        async with client.secrets.watch() as events:
            self.assertEqual(kinds(await take(events, 2)), [("secret.created", 1), ("secret.created", 2)])
        self.assertEqual(srv.requests[1].headers["last-event-id"], "1")

    async def test_failures_that_may_pass_are_retried(self) -> None:
        answers = iter(
            [
                stream(sse(1, "secret.created"), hold=False),
                error_answer(503, "backend_unavailable", "plugin restarting", [("Retry-After", "1")]),
                error_answer(429, "backend_throttled", "quota"),
                error_answer(500, "internal", "bug"),
                None,  # closed without an answer: Unreachable
                stream(sse(2, "secret.updated")),
            ]
        )
        srv, client = await self.serve(lambda _: next(answers))
        async with client.secrets.watch() as events:
            got = await take(events, 2)
        self.assertEqual(kinds(got), [("secret.created", 1), ("secret.updated", 2)])
        self.assertEqual([r.headers.get("last-event-id") for r in srv.requests], [None, "1", "1", "1", "1", "1"])

    async def test_a_refusal_on_reconnection_ends_the_watch(self) -> None:
        cases = {
            401: (secretgate.Unauthenticated, "unauthenticated"),
            403: (secretgate.PermissionDenied, "permission_denied"),
            404: (secretgate.NotFound, "not_found"),
            400: (secretgate.InvalidArgument, "invalid_argument"),
        }
        for status, (error, code) in cases.items():
            with self.subTest(status=status):
                answers = iter([stream(sse(1, "secret.created"), hold=False), error_answer(status, code, "refused")])
                srv, client = await self.serve(lambda _: next(answers))
                events = client.secrets.watch()
                received = []
                with self.assertRaises(error) as cm:
                    await drain(events, received)
                self.assertEqual((cm.exception.status, cm.exception.message), (status, "refused"))
                self.assertEqual(kinds(received), [("secret.created", 1)])
                with self.assertRaises(StopAsyncIteration, msg="the watch has ended"):
                    await events.__anext__()
                self.assertEqual(len(srv.requests), 2, "not asked again")

    async def test_the_first_connection_is_not_retried(self) -> None:
        cases = {
            "401": (error_answer(401, "unauthenticated", "no token"), secretgate.Unauthenticated),
            "403": (error_answer(403, "permission_denied", "no secrets.list"), secretgate.PermissionDenied),
            "404": (error_answer(404, "not_found", "no binding"), secretgate.NotFound),
            "503": (error_answer(503, "backend_unavailable", "down"), secretgate.Unavailable),
            "redirect": (answer(302, headers=[("Location", "http://elsewhere/")]), SecretgateError),
            "not a stream": (json_answer(200, METADATA), SecretgateError),
            "no content": (answer(204, length=False), SecretgateError),
        }
        for what, (reply, error) in cases.items():
            for how in ("async with", "async for"):
                with self.subTest(what, how=how):
                    srv, client = await self.serve(lambda _, reply=reply: reply)
                    with self.assertRaises(error) as cm:
                        if how == "async with":
                            await asyncio.wait_for(client.secrets.watch().__aenter__(), WAIT)
                        else:
                            await drain(client.secrets.watch())
                    self.assertIsNotNone(cm.exception.request_id)
                    self.assertEqual(len(srv.requests), 1)
                    if error is SecretgateError:
                        self.assertEqual(type(cm.exception), SecretgateError)
                        self.assertIn(cm.exception.code, ("invalid_response", "http_302"))

    async def test_an_unreachable_gateway_raises_at_once(self) -> None:
        client = Client(f"127.0.0.1:{free_port()}", TOKEN)
        self.addAsyncCleanup(client.aclose)
        with self.assertRaises(secretgate.Unreachable):
            await asyncio.wait_for(client.secrets.watch().__aenter__(), WAIT)

    async def test_opening_is_bounded(self) -> None:
        async def never(_: Request) -> None:
            await asyncio.Event().wait()

        cases = {"by the client's timeout": (0.2, _watch.IDLE_TIMEOUT), "else by the silence timeout": (None, 0.2)}
        for what, (timeout, idle) in cases.items():
            with self.subTest(what):
                _, client = await self.serve(never, timeout=timeout)
                with mock.patch.object(_watch, "IDLE_TIMEOUT", idle):
                    events = client.secrets.watch()
                with self.assertRaisesRegex(secretgate.Unreachable, "no answer within 0.2 s"):
                    await asyncio.wait_for(events.__aenter__(), WAIT)

    async def test_malformed_data_ends_the_watch_without_quoting_it(self) -> None:
        bad = f"id: 2\nevent: secret.created\ndata: {CANARY}\n\n".encode()
        srv, client = await self.serve(lambda _: stream(sse(1, "secret.created") + bad))
        async with client.secrets.watch() as events:
            self.assertEqual(kinds(await take(events, 1)), [("secret.created", 1)], "what came before is delivered")
            with self.assertRaises(SecretgateError) as cm:
                await take(events, 1)
            with self.assertRaises(StopAsyncIteration):
                await events.__anext__()
        self.assertEqual(cm.exception.code, "invalid_response")
        self.assertIn("/v1/projects/payments/events", cm.exception.message)
        self.assertNotIn(CANARY, str(cm.exception) + repr(cm.exception))
        self.assertEqual(srv.connections, 1, "not a reason to reconnect")

    async def test_silence_is_a_dead_connection(self) -> None:
        answers = iter([stream(sse(1, "secret.created")), stream(sse(2, "secret.updated"))])
        srv, client = await self.serve(lambda _: next(answers))
        with mock.patch.object(_watch, "IDLE_TIMEOUT", 0.5):
            events = client.secrets.watch()
        loop = asyncio.get_running_loop()
        async with events:
            await take(events, 1)
            silent_since = loop.time()
            await take(events, 1)
            waited = loop.time() - silent_since
        self.assertGreaterEqual(waited, 0.49, "reconnected before the silence timeout")
        self.assertLess(waited, 4.0, "reconnected long after the silence timeout")
        self.assertEqual(srv.requests[1].headers["last-event-id"], "1")
        self.assertEqual(srv.hangups, 1, "the silent connection was dropped")

    async def test_keep_alive_comments_keep_the_stream(self) -> None:
        async def handler(_: Request) -> AsyncIterator[bytes]:
            yield SSE_HEAD
            yield chunk(sse(1, "secret.created"))
            for _ in range(44):  # 2.2 s of comments only, over twice the timeout
                await asyncio.sleep(0.05)
                yield chunk(b": keep-alive\n\n")
            yield chunk(sse(2, "secret.updated"))
            await asyncio.Event().wait()

        srv, client = await self.serve(handler)
        # 1 s: stub and client share one event loop, and on a loaded machine
        # it can stall for a good part of a second between two comments.
        with mock.patch.object(_watch, "IDLE_TIMEOUT", 1.0):
            events = client.secrets.watch()
        async with events:
            self.assertEqual(kinds(await take(events, 2)), [("secret.created", 1), ("secret.updated", 2)])
        self.assertEqual(srv.connections, 1)

    async def test_backoff_doubles_to_its_cap_and_resets_after_events(self) -> None:
        down = error_answer(503, "backend_unavailable", "down")
        answers = iter(
            [
                stream(sse(1, "secret.created"), hold=False),
                *[down] * 8,
                stream(sse(2, "secret.updated"), hold=False),
                error_answer(503, "backend_unavailable", "down", [("Retry-After", "100")]),
                error_answer(503, "backend_unavailable", "down", [("Retry-After", "3")]),
                stream(sse(3, "secret.deleted", version=0)),
            ]
        )
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        srv, client = await self.serve(lambda _: next(answers))
        with mock.patch.multiple(_watch, MIN_BACKOFF=0.5, MAX_BACKOFF=30.0, _sleep=sleep):
            async with client.secrets.watch() as events:
                self.assertEqual([e.index for e in await take(events, 3)], [1, 2, 3])
        bases = [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 0.5]  # reset by event 2
        self.assertEqual(len(waits), len(bases) + 2, waits)
        for wait, d in zip(waits, bases):
            self.assertTrue(d / 2 <= wait <= d, f"{wait} not in [{d / 2}, {d}]: {waits}")
        self.assertEqual(waits[-2:], [30, 3], "Retry-After, up to the cap, when longer than the backoff")
        self.assertEqual(srv.connections, 13)

    async def test_breaking_out_closes_the_connection(self) -> None:
        srv, client = await self.serve(lambda _: stream(sse(1, "secret.created")))
        tasks = asyncio.all_tasks()

        async def watch_and_break() -> int:
            async for event in client.secrets.watch():
                index = event.index
                break
            return index

        self.assertEqual(await asyncio.wait_for(watch_and_break(), WAIT), 1)
        await until(lambda: srv.hangups == 1)
        self.assertEqual(client._pool._streams, set())
        await until(lambda: asyncio.all_tasks() <= tasks)

    async def test_aclose_and_async_with_close_the_connection(self) -> None:
        srv, client = await self.serve(lambda _: stream(sse(1, "secret.created")))
        events = client.secrets.watch()
        await take(events, 1)
        await events.aclose()
        await until(lambda: srv.hangups == 1)
        with self.assertRaises(StopAsyncIteration):
            await events.__anext__()
        async with client.secrets.watch() as events:
            await take(events, 1)
        await until(lambda: srv.hangups == 2)
        self.assertEqual(srv.connections, 2)

    async def test_an_abandoned_stream_is_closed_when_collected(self) -> None:
        srv, client = await self.serve(lambda _: stream(sse(1, "secret.created")))
        events = client.secrets.watch()
        await take(events, 1)
        del events
        gc.collect()
        await until(lambda: srv.hangups == 1)

    async def test_closing_the_client_ends_the_watch(self) -> None:
        async def unframed(_: Request) -> AsyncIterator[bytes]:
            yield answer(200, headers=[("Content-Type", "text/event-stream")], length=False)
            yield sse(1, "secret.created")
            await asyncio.Event().wait()

        for how, handler in {"chunked": lambda _: stream(sse(1, "secret.created")), "unframed": unframed}.items():
            with self.subTest(how):
                srv, client = await self.serve(handler)
                waits: list[float] = []

                async def sleep(seconds: float) -> None:
                    waits.append(seconds)

                with mock.patch.object(_watch, "_sleep", sleep):
                    events = client.secrets.watch()
                    await take(events, 1)
                    consumer = asyncio.create_task(take(events, 1))
                    await asyncio.sleep(0.01)
                    await client.aclose()
                    with self.assertRaisesRegex(RuntimeError, "closed"):
                        await consumer
                await until(lambda: srv.hangups == 1)
                self.assertEqual((srv.connections, waits), (1, []), "no attempt to reconnect")

    async def test_a_stream_takes_no_connection_slot(self) -> None:
        def handler(req: Request) -> object:
            return stream(sse(1, "secret.created")) if req.target.endswith("/events") else json_answer(200, METADATA)

        _, client = await self.serve(handler, max_connections=1)
        async with client.secrets.watch() as events:
            meta = await asyncio.wait_for(client.secrets.describe("db"), WAIT)
            self.assertEqual(meta.name, "db")
            await take(events, 1)

    async def test_a_cancelled_wait_loses_nothing(self) -> None:
        more = asyncio.Event()

        async def handler(_: Request) -> AsyncIterator[bytes]:
            yield SSE_HEAD
            await more.wait()
            yield chunk(sse(1, "secret.created")[:20])
            yield chunk(sse(1, "secret.created")[20:])
            await asyncio.Event().wait()

        srv, client = await self.serve(handler)
        async with client.secrets.watch() as events:
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(events.__anext__(), 0.05)
            more.set()
            self.assertEqual(kinds(await take(events, 1)), [("secret.created", 1)])
        self.assertEqual(srv.connections, 1)

    async def test_one_reader_at_a_time(self) -> None:
        more = asyncio.Event()

        async def handler(_: Request) -> AsyncIterator[bytes]:
            yield SSE_HEAD
            await more.wait()
            yield chunk(sse(1, "secret.created"))
            await asyncio.Event().wait()

        _, client = await self.serve(handler)
        async with client.secrets.watch() as events:
            reader = asyncio.create_task(take(events, 1))
            await asyncio.sleep(0.01)
            with self.assertRaisesRegex(RuntimeError, "one task at a time"):
                await events.__anext__()
            more.set()
            self.assertEqual(kinds(await reader), [("secret.created", 1)], "the first reader goes on")

    async def test_event_repr_and_logs_hold_no_data(self) -> None:
        _, client = await self.serve(lambda _: stream(sse(1, "secret.created")))
        with self.assertLogs("secretgate", "DEBUG") as logs:
            async with client.secrets.watch() as events:
                (event,) = await take(events, 1)
        self.assertEqual(repr(event), "Event(kind='secret.created', project='payments', name='db', version=1, index=1)")
        self.assertTrue(all(TOKEN not in line for line in logs.output))
        self.assertIn("/v1/projects/payments/events", "".join(logs.output))


class StreamFramingTest(unittest.IsolatedAsyncioTestCase):
    async def test_chunk_framing_is_checked(self) -> None:
        # A chunk longer than its size says: the stream is out of step, and
        # what follows cannot be trusted to be events.
        body = b"3\r\nabcXX\r\n0\r\n\r\n"
        async with StubServer(lambda _: answer(200, body, [("Transfer-Encoding", "chunked")], length=False)) as srv:
            client = Client(srv.addr, TOKEN)
            self.addAsyncCleanup(client.aclose)
            resp = await client._pool.stream("/", [], WAIT)
            self.addCleanup(resp.close)
            self.assertEqual(await asyncio.wait_for(resp.read(), WAIT), b"abc")
            with self.assertRaisesRegex(secretgate._http.TransportError, "malformed chunk"):
                await asyncio.wait_for(resp.read(), WAIT)


class WatchValidationTest(unittest.IsolatedAsyncioTestCase):
    """Bad arguments fail when watch() is called, naming the argument,
    before anything is sent."""

    async def asyncSetUp(self) -> None:
        self.srv = StubServer(lambda _: None)
        await self.srv.start()
        self.addAsyncCleanup(self.srv.close)
        self.client = Client(self.srv.addr, TOKEN, "payments")
        self.addAsyncCleanup(self.client.aclose)

    async def asyncTearDown(self) -> None:
        self.assertEqual(self.srv.requests, [], "nothing was sent")

    def test_invalid_arguments(self) -> None:
        cases = {
            "project": (dict(project="Payments"), "invalid project"),
            "unclosed class": (dict(secrets="db-["), "invalid secrets"),
            "empty class": (dict(secrets="[]"), "invalid secrets"),
            "trailing escape": (dict(secrets="db\\"), "invalid secrets"),
            "range without end": (dict(secrets="[a-]"), "invalid secrets"),
            "lone surrogate": (dict(secrets="db-\udc00"), "invalid secrets"),
            "negative id": (dict(last_event_id=-1), "invalid last_event_id"),
            "id too large": (dict(last_event_id=1 << 63), "invalid last_event_id"),
        }
        for what, (kwargs, message) in cases.items():
            with self.subTest(what):
                with self.assertRaises(InvalidArgument) as cm:
                    self.client.secrets.watch(**kwargs)  # type: ignore[arg-type]
                self.assertIn(message, str(cm.exception))
                self.assertIsNone(cm.exception.status)

    def test_wrong_types(self) -> None:
        bad = (dict(secrets=5), dict(last_event_id="5"), dict(last_event_id=True), dict(project=None, secrets=b"x"))
        for kwargs in bad:
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaises(TypeError):
                    self.client.secrets.watch(**kwargs)  # type: ignore[arg-type]

    def test_valid_globs(self) -> None:
        for glob in ("", "*", "db-*", "[a-c]?x", "[^a]*", "\\*", "a[\\]]b", "*-[0-9]"):
            with self.subTest(glob=glob):
                self.assertIsInstance(self.client.secrets.watch(glob), EventStream)


if __name__ == "__main__":
    unittest.main()
