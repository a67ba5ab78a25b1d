"""Offline tests of the HTTP layer against the scripted server in stub.py:
framing (Content-Length, chunked, end of connection), the keep-alive pool,
timeouts, redirects, and what goes on the wire."""

from __future__ import annotations

import asyncio
import json
import time
import unittest
import uuid
from collections.abc import Awaitable, Callable

from stub import METADATA, Request, StubServer, answer, error_answer, free_port, json_answer  # first: see stub

import secretgate
from secretgate import Client, SecretgateError, Unavailable, Unreachable

TOKEN = "sg_test-token"
BODY = json.dumps(METADATA).encode()


def ok(_: Request) -> bytes:
    return json_answer(200, METADATA)


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """``body`` in chunks of the given sizes (the rest in a last chunk), with
    a chunk extension and a trailer, both of which a client must accept."""
    out, pos = b"", 0
    for size in [*sizes, len(body)]:
        piece = body[pos : pos + size]
        pos += len(piece)
        if piece:
            out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


class FramingTest(unittest.IsolatedAsyncioTestCase):
    async def test_content_length_answer_and_request_head(self) -> None:
        async with StubServer(ok) as srv, Client(srv.addr, TOKEN, "payments") as client:
            meta = await client.secrets.describe("db")
        self.assertEqual(meta.name, "db")
        self.assertEqual(meta.keys, ["password", "user"])
        self.assertEqual(meta.created_at.microsecond, 123456, "nanoseconds are cut to microseconds")
        self.assertEqual(meta.updated_at.utcoffset().total_seconds(), 0)
        (req,) = srv.requests
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.target, "/v1/projects/payments/secrets/db/metadata")
        self.assertEqual(req.headers["host"], f"127.0.0.1:{srv.port}")
        self.assertEqual(req.headers["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(req.headers["user-agent"], f"secretgate-python/{secretgate.__version__}")
        self.assertEqual(req.headers["accept"], "application/json")
        self.assertEqual(uuid.UUID(req.headers["x-request-id"]).version, 4)
        self.assertNotIn("content-length", req.headers, "a GET has no body")

    async def test_chunked_answer(self) -> None:
        def handler(_: Request) -> bytes:
            return answer(200, chunked(BODY, [1, 7, 30]), [("Transfer-Encoding", "chunked")], length=False)

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            first = await client.secrets.describe("db")
            second = await client.secrets.describe("db")
        self.assertEqual(first, second)
        self.assertEqual(first.labels, {"env": "prod"})
        self.assertEqual(srv.connections, 1, "a chunked answer leaves the connection reusable")

    async def test_malformed_chunk_is_unreachable(self) -> None:
        def handler(_: Request) -> bytes:
            return answer(200, b"zz\r\n{}\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], length=False)

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(Unreachable, "chunk size"):
                await client.secrets.describe("db")

    async def test_answer_ended_by_closing(self) -> None:
        async with StubServer(lambda _: answer(200, BODY, length=False)) as srv, Client(srv.addr, TOKEN) as client:
            first = await client.secrets.describe("db")
            second = await client.secrets.describe("db")
        self.assertEqual(first, second)
        self.assertEqual(srv.connections, 2, "a body ended by closing leaves nothing to reuse")

    async def test_connection_close_is_honoured(self) -> None:
        def handler(_: Request) -> bytes:
            return json_answer(200, METADATA, [("Connection", "close")])

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            await client.secrets.describe("db")
            await client.secrets.describe("db")
        self.assertEqual(srv.connections, 2)

    async def test_interim_answer_is_skipped(self) -> None:
        def handler(_: Request) -> bytes:
            return b"HTTP/1.1 100 Continue\r\n\r\n" + json_answer(200, METADATA)

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            self.assertEqual((await client.secrets.describe("db")).version, 3)

    async def test_not_http_is_unreachable(self) -> None:
        async with StubServer(lambda _: b"SSH-2.0-OpenSSH\r\n\r\n") as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(Unreachable, "not HTTP"):
                await client.secrets.describe("db")

    async def test_answer_that_is_not_json(self) -> None:
        async with StubServer(lambda _: answer(200, b"<html>")) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaises(SecretgateError) as cm:
                await client.secrets.describe("db")
        self.assertEqual(cm.exception.code, "invalid_response")

    async def test_request_body_and_if_match(self) -> None:
        async with StubServer(ok) as srv, Client(srv.addr, TOKEN) as client:
            await client.secrets.update("db", {"user": "app"}, {"env": "dev"}, if_match=3)
            await client.secrets.delete("db", if_match=4)
        put, delete = srv.requests
        self.assertEqual((put.method, put.target), ("PUT", "/v1/projects/default/secrets/db"))
        self.assertEqual(put.headers["if-match"], '"3"')
        self.assertEqual(put.headers["content-type"], "application/json")
        self.assertEqual(json.loads(put.body), {"data": {"user": "app"}, "labels": {"env": "dev"}})
        self.assertEqual(delete.headers["if-match"], '"4"')
        self.assertEqual(delete.body, b"")


class PoolTest(unittest.IsolatedAsyncioTestCase):
    async def test_sequential_requests_reuse_one_connection(self) -> None:
        async with StubServer(ok) as srv, Client(srv.addr, TOKEN) as client:
            for _ in range(10):
                await client.secrets.describe("db")
        self.assertEqual(srv.connections, 1)
        self.assertEqual(len(srv.requests), 10)

    async def test_concurrency_is_bounded_by_max_connections(self) -> None:
        async def slow(_: Request) -> bytes:
            await asyncio.sleep(0.02)
            return json_answer(200, METADATA)

        async with StubServer(slow) as srv, Client(srv.addr, TOKEN, max_connections=3) as client:
            results = await asyncio.gather(*(client.secrets.describe("db") for _ in range(30)))
        self.assertEqual(len(results), 30)
        self.assertLessEqual(srv.connections, 3)
        self.assertEqual(srv.max_in_flight, 3, "the pool fills up to its bound, and no further")

    async def test_closed_keep_alive_connection_is_replaced_for_get(self) -> None:
        # The stub answers the first request of each connection and closes
        # on the second without a word: what a server whose idle timeout
        # fired just as the request left looks like.
        def first_only(r: Request) -> bytes | None:
            return json_answer(200, METADATA) if r.index == 0 else None

        async with StubServer(first_only) as srv, Client(srv.addr, TOKEN) as client:
            await client.secrets.describe("db")
            await client.secrets.describe("db")
            self.assertEqual(srv.connections, 2, "the GET was sent again on a new connection")
            with self.assertRaisesRegex(Unreachable, "closed before the gateway answered"):
                await client.secrets.patch("db", {"k": "v"})
        self.assertEqual([r.method for r in srv.requests], ["GET", "GET", "GET", "PATCH"], "a PATCH is never sent twice")

    async def test_aclose_closes_connections(self) -> None:
        async with StubServer(ok) as srv:
            client = Client(srv.addr, TOKEN)
            await client.secrets.describe("db")
            await client.aclose()
            with self.assertRaisesRegex(RuntimeError, "closed"):
                await client.secrets.describe("db")
        self.assertEqual(len(srv.requests), 1)


# Every write of the API, as a call on a client. A write that reached the
# gateway may have been applied though no answer came back (the gateway
# stored it, then the connection or the plugin died), so the client must
# never send one twice by itself, with or without if_match: a replay either
# applies it again or, with if_match, answers VersionMismatch for a write that
# was applied.
WRITES: list[tuple[str, Callable[[Client], Awaitable[object]]]] = [
    ("create", lambda c: c.secrets.create("db", {"k": "v"})),
    ("update", lambda c: c.secrets.update("db", {"k": "v"})),
    ("update with if_match", lambda c: c.secrets.update("db", {"k": "v"}, if_match=3)),
    ("patch", lambda c: c.secrets.patch("db", {"k": "v"})),
    ("patch with if_match", lambda c: c.secrets.patch("db", {"k": "v"}, if_match=3)),
    ("delete", lambda c: c.secrets.delete("db")),
    ("delete with if_match", lambda c: c.secrets.delete("db", if_match=3)),
    ("copy", lambda c: c.secrets.copy("db", to_project="other")),
    ("start migration", lambda c: c.migrations.start("a", "b", ["default"])),
]


class WriteOnceTest(unittest.IsolatedAsyncioTestCase):
    async def _send_write(
        self, write: Callable[[Client], Awaitable[object]], *, reused: bool, unavailable: bool
    ) -> None:
        """Send one write to a stub that reads it in full, then closes the
        connection without a word (or answers 503); assert it arrived once."""

        def handler(r: Request) -> bytes | None:
            if r.method == "GET":
                return json_answer(200, METADATA)
            if unavailable:
                return error_answer(503, "backend_unavailable", "retry later", [("Retry-After", "1")])
            return None

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN, timeout=5) as client:
            if reused:
                # A first exchange leaves a keep-alive connection that the
                # write then goes out on.
                await client.secrets.describe("db")
            with self.assertRaises(Unavailable) as cm:
                await write(client)
            self.assertIs(type(cm.exception), Unavailable if unavailable else Unreachable)
        writes = [r.method for r in srv.requests if r.method != "GET"]
        self.assertEqual(len(writes), 1, f"the write arrived {len(writes)} times")

    async def test_write_is_not_resent(self) -> None:
        cases = [
            ("dropped on a fresh connection", False, False),
            ("dropped on a reused connection", True, False),
            ("answered 503", True, True),
        ]
        for case, reused, unavailable in cases:
            for name, write in WRITES:
                with self.subTest(case=case, write=name):
                    await self._send_write(write, reused=reused, unavailable=unavailable)


class FailureTest(unittest.IsolatedAsyncioTestCase):
    async def test_timeout(self) -> None:
        async def silent(r: Request) -> bytes:
            if r.connection == 1:
                await asyncio.sleep(30)
            return json_answer(200, METADATA)

        async with StubServer(silent) as srv, Client(srv.addr, TOKEN, timeout=0.2) as client:
            start = time.monotonic()
            with self.assertRaisesRegex(Unreachable, "within 0.2 s") as cm:
                await client.secrets.describe("db")
            self.assertLess(time.monotonic() - start, 2)
            self.assertIsInstance(cm.exception, Unavailable)
            self.assertIsNone(cm.exception.status)
            meta = await client.secrets.describe("db")
        self.assertEqual(meta.version, 3, "the timed-out connection was dropped, a new one works")
        self.assertEqual(srv.connections, 2)

    async def test_connection_refused(self) -> None:
        async with Client(f"127.0.0.1:{free_port()}", TOKEN) as client:
            with self.assertRaises(Unreachable) as cm:
                await client.secrets.list()
        self.assertEqual(cm.exception.code, "unreachable")
        self.assertIn("cannot reach the gateway at http://127.0.0.1:", str(cm.exception))
        self.assertIsNotNone(cm.exception.request_id)

    async def test_redirect_is_not_followed(self) -> None:
        def redirect(_: Request) -> bytes:
            return answer(302, b"", [("Location", "http://elsewhere.example/v1/projects")], reason="Found")

        async with StubServer(redirect) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(SecretgateError, "redirects are not followed") as cm:
                await client.projects()
        self.assertEqual((cm.exception.code, cm.exception.status), ("http_302", 302))
        self.assertEqual(len(srv.requests), 1)

    async def test_error_envelopes_map_to_types(self) -> None:
        cases = [
            (400, "invalid_argument", secretgate.InvalidArgument),
            (401, "unauthenticated", secretgate.Unauthenticated),
            (403, "permission_denied", secretgate.PermissionDenied),
            (404, "not_found", secretgate.NotFound),
            (409, "already_exists", secretgate.AlreadyExists),
            (409, "migration_in_progress", secretgate.MigrationInProgress),
            (412, "version_mismatch", secretgate.VersionMismatch),
            (413, "payload_too_large", secretgate.PayloadTooLarge),
            (500, "internal", secretgate.InternalError),
            (503, "backend_unavailable", secretgate.Unavailable),
            (418, "some_new_code", SecretgateError),
        ]
        for status, code, cls in cases:
            with self.subTest(code=code):
                envelope = error_answer(status, code, f"about {code}", [("X-Request-Id", "srv-1"), ("Retry-After", "1")])
                async with StubServer(lambda _, out=envelope: out) as srv, Client(srv.addr, TOKEN) as client:
                    with self.assertRaises(cls) as cm:
                        await client.secrets.get("db")
                e = cm.exception
                self.assertIs(type(e), cls)
                self.assertEqual((e.code, e.status, e.message, e.request_id), (code, status, f"about {code}", "srv-1"))
                self.assertEqual(str(e), f"{code} ({status}): about {code} [request srv-1]")
                if isinstance(e, Unavailable):
                    self.assertEqual(e.retry_after, 1.0)

    async def test_error_without_envelope_reports_the_status_only(self) -> None:
        def proxy(_: Request) -> bytes:
            return answer(502, b"<html>upstream said: hunter2</html>", reason="Bad Gateway")

        async with StubServer(proxy) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaises(Unavailable) as cm:
                await client.secrets.get("db")
        self.assertEqual(cm.exception.code, "backend_unavailable")
        self.assertEqual(cm.exception.message, "Bad Gateway")
        self.assertNotIn("hunter2", repr(cm.exception) + str(cm.exception))


if __name__ == "__main__":
    unittest.main()
