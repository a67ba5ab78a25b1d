"""Offline tests of ``secrets.rollback`` and ``secrets.versions(keys=True)``
against the scripted server: what goes on the wire, what comes back, and
that bad arguments fail before anything is sent."""

from __future__ import annotations

import unittest
from datetime import datetime, timezone

from stub import METADATA, StubServer, error_answer, json_answer  # first: see stub

import secretgate
from secretgate import Client, InvalidArgument, Metadata, VersionInfo

TOKEN = "sg_rollback-token"
VERSIONS = {
    "versions": [
        {"version": 1, "created_at": "2025-06-01T09:00:00Z"},  # older than the newest 20: no keys
        {"version": 2, "created_at": "2025-06-02T09:00:00Z", "keys": ["password", "user"]},
        {"version": 3, "created_at": "2025-06-03T09:00:00Z", "keys": ["password"]},
    ]
}


class RollbackTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.answers: list[bytes] = []
        self.srv = StubServer(lambda r: self.answers.pop(0))
        await self.srv.start()
        self.addAsyncCleanup(self.srv.close)
        self.client = Client(self.srv.addr, TOKEN)
        self.addAsyncCleanup(self.client.aclose)

    async def test_rollback_on_the_wire(self) -> None:
        cases = [
            # (name, call, target, If-Match sent)
            ("latest project", lambda s: s.rollback("db", 2), "/v1/projects/default/secrets/db/rollback", None),
            ("keyword version", lambda s: s.rollback("db", version=2), "/v1/projects/default/secrets/db/rollback", None),
            ("check-and-set", lambda s: s.rollback("db", 2, if_match=3), "/v1/projects/default/secrets/db/rollback", '"3"'),
            ("other project", lambda s: s.rollback("db", 2, project="billing"), "/v1/projects/billing/secrets/db/rollback", None),
            ("platform.secrets", lambda s: self.client.platform.secrets.rollback("db", 2), "/v1/projects/default/secrets/db/rollback", None),
        ]
        for name, call, target, if_match in cases:
            with self.subTest(name):
                self.srv.requests.clear()
                self.answers.append(json_answer(200, {**METADATA, "version": 4}, [("ETag", '"4"')]))
                meta = await call(self.client.secrets)
                self.assertIs(type(meta), Metadata, "metadata only: a rollback answers no value")
                self.assertEqual((meta.name, meta.version, meta.keys), ("db", 4, ["password", "user"]))
                (req,) = self.srv.requests
                self.assertEqual((req.method, req.target, req.body), ("POST", target, b'{"version":2}'))
                self.assertEqual(req.headers.get("if-match"), if_match)
                self.assertEqual(req.headers["content-type"], "application/json")

    async def test_rollback_errors_are_typed(self) -> None:
        cases = [
            ("version gone", error_answer(404, "not_found", 'version 7 of secret "db" not found'), secretgate.NotFound),
            ("no secrets.update", error_answer(403, "permission_denied", "role reader may not secrets.update"), secretgate.PermissionDenied),
            ("if_match", error_answer(412, "version_mismatch", "latest version is 5, not 3"), secretgate.VersionMismatch),
        ]
        for name, answer, cls in cases:
            with self.subTest(name):
                self.answers.append(answer)
                with self.assertRaises(cls):
                    await self.client.secrets.rollback("db", 7, if_match=3)

    async def test_bad_arguments_fail_before_sending(self) -> None:
        s = self.client.secrets
        for name, call, field in [
            ("version 0", s.rollback("db", 0), "version"),
            ("negative version", s.rollback("db", -1), "version"),
            ("if_match 0", s.rollback("db", 1, if_match=0), "if_match"),
            ("name", s.rollback("bad name", 1), "name"),
            ("project", s.rollback("db", 1, project="Bad"), "project"),
        ]:
            with self.subTest(name), self.assertRaises(InvalidArgument) as cm:
                await call
            self.assertTrue(cm.exception.message.startswith(f"invalid {field}: "), cm.exception.message)
        for bad in (True, "2", 2.0, None):
            with self.subTest(repr(bad)), self.assertRaisesRegex(TypeError, "version must be an int"):
                await s.rollback("db", bad)  # type: ignore[arg-type]
        with self.assertRaisesRegex(TypeError, "keys must be a bool"):
            await s.versions("db", keys="yes")  # type: ignore[arg-type]
        self.assertEqual(self.srv.requests, [])

    async def test_versions_with_and_without_keys(self) -> None:
        self.answers += [json_answer(200, VERSIONS), json_answer(200, VERSIONS)]
        with_keys = await self.client.secrets.versions("db", keys=True)
        plain = await self.client.secrets.versions("db")
        self.assertEqual(
            [r.target for r in self.srv.requests],
            ["/v1/projects/default/secrets/db/versions?keys=true", "/v1/projects/default/secrets/db/versions"],
        )
        self.assertEqual([(v.version, v.keys) for v in with_keys], [(1, None), (2, ["password", "user"]), (3, ["password"])])
        self.assertEqual(with_keys[2].created_at, datetime(2025, 6, 3, 9, tzinfo=timezone.utc))
        self.assertEqual([v.version for v in plain], [1, 2, 3])
        self.assertEqual(VersionInfo.from_json({"version": 1}), VersionInfo(1, None), "keys default to None")

    async def test_malformed_keys_are_an_invalid_response(self) -> None:
        for keys in ("password", [1], {"k": "v"}):
            with self.subTest(repr(keys)):
                self.answers.append(json_answer(200, {"versions": [{"version": 1, "keys": keys}]}))
                with self.assertRaises(secretgate.SecretgateError) as cm:
                    await self.client.secrets.versions("db", keys=True)
                self.assertEqual(cm.exception.code, "invalid_response")


if __name__ == "__main__":
    unittest.main()
