"""Offline tests of the client: configuration from the environment,
validation before any request, the models, and that no value or token shows
in a repr, a str, an exception or a log line."""

from __future__ import annotations

import logging
import os
import pickle
import unittest
from datetime import datetime, timezone
from unittest import mock

from stub import METADATA, Request, StubServer, error_answer, json_answer  # first: see stub

import secretgate
from secretgate import Client, InvalidArgument, Secret, request_id
from secretgate.models import Metadata, Migration, parse_time

TOKEN = "sg_offline-token"
VALUE = "hunter2-value-that-must-not-leak"


class ConfigTest(unittest.TestCase):
    def test_defaults_come_from_the_environment(self) -> None:
        env = {
            "SECRETGATE_ADDR": "https://gw.example:8443/base/",
            "SECRETGATE_TOKEN": TOKEN,
            "SECRETGATE_PROJECT": "payments",
        }
        with mock.patch.dict(os.environ, env, clear=True):
            client = Client()
        self.assertEqual(client.addr, "https://gw.example:8443/base")
        self.assertEqual(client.project, "payments")
        self.assertEqual(client.timeout, 30.0)

    def test_built_in_defaults(self) -> None:
        with mock.patch.dict(os.environ, {}, clear=True):
            client = Client(token=TOKEN)
        self.assertEqual((client.addr, client.project), (secretgate.DEFAULT_ADDR, secretgate.DEFAULT_PROJECT))
        self.assertEqual(Client("10.0.0.1:9000", TOKEN).addr, "http://10.0.0.1:9000", "a bare host:port is http")

    def test_missing_token_is_a_clear_value_error(self) -> None:
        with mock.patch.dict(os.environ, {}, clear=True):
            with self.assertRaisesRegex(ValueError, "SECRETGATE_TOKEN"):
                Client()

    def test_bad_configuration(self) -> None:
        cases = {
            "scheme": dict(addr="ftp://host", token=TOKEN),
            "host": dict(addr="http://:80", token=TOKEN),
            "credentials": dict(addr="http://user:pw@host", token=TOKEN),
            "whitespace": dict(token=f"{VALUE} x"),
            "project": dict(token=TOKEN, project="Payments"),
            "timeout": dict(token=TOKEN, timeout=0),
        }
        for what, kwargs in cases.items():
            with self.subTest(what):
                with self.assertRaises(ValueError) as cm:
                    Client(**kwargs)
                self.assertNotIn(VALUE, str(cm.exception), "a bad token is never repeated")

    def test_repr_shows_neither_token_nor_values(self) -> None:
        client = Client("http://127.0.0.1:1", TOKEN)
        self.assertEqual(repr(client), "Client(addr='http://127.0.0.1:1', project='default')")
        self.assertIs(client.platform.secrets, client.secrets)


class ValidationTest(unittest.IsolatedAsyncioTestCase):
    """Every bad argument fails before a request is sent, naming the field."""

    async def asyncSetUp(self) -> None:
        self.srv = StubServer(lambda r: json_answer(200, METADATA))
        await self.srv.start()
        self.addAsyncCleanup(self.srv.close)
        self.client = Client(self.srv.addr, TOKEN)
        self.addAsyncCleanup(self.client.aclose)

    async def asyncTearDown(self) -> None:
        self.assertEqual(self.srv.requests, [], "nothing was sent")

    async def assertInvalid(self, field: str, aw: object) -> InvalidArgument:
        with self.assertRaises(InvalidArgument) as cm:
            await aw  # type: ignore[misc]
        e = cm.exception
        self.assertTrue(e.message.startswith(f"invalid {field}: "), e.message)
        self.assertIsNone(e.status)
        self.assertNotIn(VALUE, str(e) + repr(e))
        return e

    async def test_names(self) -> None:
        s = self.client.secrets
        await self.assertInvalid("name", s.get("bad name"))
        await self.assertInvalid("name", s.get("-leading-dash"))
        await self.assertInvalid("name", s.describe("x" * 129))
        await self.assertInvalid("name", s.create("a/b", {"k": VALUE}))
        await self.assertInvalid("name", s.delete("../admin"))
        await self.assertInvalid("project", s.list(project="UPPER"))
        await self.assertInvalid("project", s.get("ok", project="trailing-"))
        await self.assertInvalid("to_project", s.copy("ok", to_project="Bad"))
        await self.assertInvalid("as", s.copy("ok", as_name="bad name"))
        await self.assertInvalid("id", self.client.migrations.get("../x"))
        await self.assertInvalid("projects", self.client.migrations.start("a", "b", ["Bad"]))

    async def test_keys_and_values(self) -> None:
        s = self.client.secrets
        e = await self.assertInvalid("data", s.create("ok", {"bad key": VALUE}))
        self.assertIn("'bad key'", e.message, "keys are not secret: the message names the bad one")
        await self.assertInvalid("data.k", s.create("ok", {"k": VALUE + "\ud800"}))
        await self.assertInvalid("labels.env", s.create("ok", {"k": "v"}, {"env": "\udfff"}))
        await self.assertInvalid("set", s.patch("ok", {"a b": VALUE}))
        await self.assertInvalid("unset", s.patch("ok", unset=["a b"]))
        await self.assertInvalid("set", s.patch("ok"))
        with self.assertRaisesRegex(TypeError, r"data\['k'\] must be a str, not int"):
            await s.create("ok", {"k": 42})  # type: ignore[dict-item]
        with self.assertRaisesRegex(TypeError, "unset must be a list"):
            await s.patch("ok", unset="key")
        with self.assertRaisesRegex(TypeError, "projects must be a list"):
            await self.client.migrations.start("a", "b", "payments")

    async def test_numbers(self) -> None:
        s = self.client.secrets
        await self.assertInvalid("version", s.get("ok", version=0))
        await self.assertInvalid("if_match", s.update("ok", {"k": "v"}, if_match=-1))
        await self.assertInvalid("version", s.copy("ok", to_project="other", version=0))
        await self.assertInvalid("page_size", s.list(page_size=0))
        await self.assertInvalid("page_size", s.list(page_size=1001))
        with self.assertRaisesRegex(TypeError, "if_match must be an int"):
            await s.delete("ok", if_match="3")  # type: ignore[arg-type]

    async def test_request_id(self) -> None:
        with self.assertRaisesRegex(ValueError, "request id"):
            with request_id("has space"):
                pass


class WireTest(unittest.IsolatedAsyncioTestCase):
    async def test_request_id_and_bodies(self) -> None:
        def handler(r: Request) -> bytes:
            if r.method == "POST" and r.target.endswith("/copy"):
                return json_answer(201, {**METADATA, "project": "billing"})
            if r.target == "/v1/migrations":
                return json_answer(202, {"id": "6f0c-1"})
            if r.method == "PATCH":
                return json_answer(200, METADATA)
            return error_answer(404, "not_found", "secret \"db\" not found", [("X-Request-Id", r.headers["x-request-id"])])

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            with request_id("caller-42"):
                with self.assertRaises(secretgate.NotFound) as cm:
                    await client.secrets.get("db")
            self.assertEqual(cm.exception.request_id, "caller-42")
            copied = await client.secrets.copy("db", to_project="billing", as_name="db2", version=2, overwrite=True)
            self.assertEqual(copied.project, "billing")
            mid = await client.migrations.start("src", "dst", ["payments"], dry_run=True, workers=2)
            self.assertEqual(mid, "6f0c-1")
            await client.secrets.patch("db", {"a": "1"}, ["b"])
        get, copy, start, patch = srv.requests
        self.assertEqual(get.headers["x-request-id"], "caller-42")
        self.assertEqual(copy.target, "/v1/projects/default/secrets/db/copy")
        self.assertEqual(copy.body, b'{"to_project":"billing","as":"db2","version":2,"overwrite":true}')
        self.assertEqual(
            start.body,
            b'{"source":"src","target":"dst","projects":["payments"],"versions":"latest","on_conflict":"fail",'
            b'"dry_run":true,"switch":false,"delete_source":false,"workers":2}',
        )
        self.assertEqual(patch.body, b'{"set":{"a":"1"},"unset":["b"]}')

    async def test_list_follows_page_tokens(self) -> None:
        pages = {
            "": (["a", "b"], "t1"),
            "t1": ([], "t2"),  # a page may be empty while more follow (bindings filter it)
            "t2": (["c"], ""),
        }

        def handler(r: Request) -> bytes:
            token = r.target.partition("page_token=")[2]
            names, nxt = pages[token]
            return json_answer(200, {"secrets": [{**METADATA, "name": n} for n in names], "next_page_token": nxt})

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            names = [m.name for m in await client.secrets.list("p", page_size=2)]
        self.assertEqual(names, ["a", "b", "c"])
        self.assertEqual(
            [r.target for r in srv.requests],
            [
                "/v1/projects/default/secrets?prefix=p&page_size=2",
                "/v1/projects/default/secrets?prefix=p&page_size=2&page_token=t1",
                "/v1/projects/default/secrets?prefix=p&page_size=2&page_token=t2",
            ],
        )

    async def test_repeated_page_token_stops_the_listing(self) -> None:
        def handler(_: Request) -> bytes:
            return json_answer(200, {"secrets": [METADATA], "next_page_token": "same"})

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(secretgate.SecretgateError, "repeated a page token"):
                await client.secrets.list()
        self.assertEqual(len(srv.requests), 2)

    async def test_logs_never_hold_values_or_tokens(self) -> None:
        def handler(r: Request) -> bytes:
            if r.method == "GET":
                return json_answer(200, {**METADATA, "data": {"password": VALUE}})
            return error_answer(409, "already_exists", 'secret "db" already exists in project "default"')

        async with StubServer(handler) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertLogs("secretgate", logging.DEBUG) as logs:
                secret = await client.secrets.get("db")
                with self.assertRaises(secretgate.AlreadyExists) as cm:
                    await client.secrets.create("db", {"password": VALUE})
        self.assertTrue(secret.data["password"] == VALUE)
        shown = "\n".join(logs.output) + str(cm.exception) + repr(cm.exception) + repr(secret) + str(secret)
        self.assertNotIn(VALUE, shown)
        self.assertNotIn(TOKEN, shown)
        self.assertIn("GET /v1/projects/default/secrets/db -> 200", shown)


class ModelTest(unittest.TestCase):
    def test_secret_repr_shows_keys_not_values(self) -> None:
        secret = Secret.from_json({**METADATA, "data": {"password": VALUE, "user": "app"}})
        for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
            self.assertNotIn(VALUE, text)
            self.assertIn("keys=['password', 'user']", text)
        self.assertIsInstance(secret, Metadata)
        self.assertTrue(secret.data["password"] == VALUE)

    def test_times(self) -> None:
        self.assertEqual(
            parse_time("2025-06-01T09:00:00.123456789Z"),
            datetime(2025, 6, 1, 9, 0, 0, 123456, tzinfo=timezone.utc),
        )
        self.assertEqual(parse_time("2025-06-01T11:00:00+02:00"), datetime(2025, 6, 1, 9, tzinfo=timezone.utc))
        self.assertIsNone(parse_time(""), "the gateway's zero time")
        with self.assertRaises(ValueError):
            parse_time("yesterday")

    def test_migration_report(self) -> None:
        m = Migration.from_json(
            {
                "id": "6f0c",
                "state": "failed",
                "source": "src",
                "target": "dst",
                "projects": ["payments"],
                "versions": "all",
                "on_conflict": "fail",
                "dry_run": False,
                "switch": True,
                "delete_source": False,
                "workers": 8,
                "switched": False,
                "total": 3,
                "copied": 2,
                "skipped": 0,
                "failed": 1,
                "verified": 2,
                "deleted": 0,
                "kept": 0,
                "resumed": 1,
                "errors": {"db": "conflict"},
                "started_by": "admin",
                "request_id": "r1",
                "started_at": "2025-06-01T09:00:00Z",
                "finished_at": "2025-06-01T09:00:01Z",
                "a_field_of_a_newer_gateway": 1,
            }
        )
        self.assertTrue(m.done)
        self.assertEqual((m.failed, m.errors, m.resumed), (1, {"db": "conflict"}, 1))
        self.assertEqual(m.finished_at, datetime(2025, 6, 1, 9, 0, 1, tzinfo=timezone.utc))
        self.assertFalse(Migration.from_json({"state": "running"}).done)

    def test_exceptions_pickle(self) -> None:
        e = secretgate.Unavailable("backend_unavailable", 503, "backend down", "r1", retry_after=1.0)
        back = pickle.loads(pickle.dumps(e))
        self.assertEqual((type(back), str(back), back.retry_after), (type(e), str(e), 1.0))


if __name__ == "__main__":
    unittest.main()
