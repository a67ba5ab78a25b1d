"""client.secrets.resolve against the stub server: the request it sends,
references checked before sending, batches of 100, and answers that lack a
reference. The real gateway's answers are tested in test_gateway.py."""

from __future__ import annotations

import json
import unittest

from stub import Request, StubServer, error_answer, json_answer  # first: see stub

import secretgate
from secretgate import Client

TOKEN = "sg_test_token"


def echo(r: Request) -> bytes:
    """Answer every reference with a value derived from it."""
    refs = json.loads(r.body)["refs"]
    return json_answer(200, {"values": {ref: "v:" + ref for ref in refs}})


class ResolveTest(unittest.IsolatedAsyncioTestCase):
    async def test_one_request_for_all_references(self) -> None:
        refs = ["sg://payments/db/password", "sg://payments/db/user?version=2", "sg://payments/db/password"]
        async with StubServer(echo) as srv, Client(srv.addr, TOKEN) as client:
            got = await client.secrets.resolve(refs)
        self.assertEqual(got, {r: "v:" + r for r in refs})
        (req,) = srv.requests
        self.assertEqual((req.method, req.target), ("POST", "/v1/resolve"))
        self.assertEqual(req.body, b'{"refs":["sg://payments/db/password","sg://payments/db/user?version=2"]}')

    async def test_batches_of_100(self) -> None:
        refs = [f"sg://default/s/k{i}" for i in range(150)]
        async with StubServer(echo) as srv, Client(srv.addr, TOKEN) as client:
            got = await client.secrets.resolve(refs)
        self.assertEqual(len(got), 150)
        self.assertEqual([len(json.loads(r.body)["refs"]) for r in srv.requests], [100, 50])

    async def test_malformed_references_are_refused_before_sending(self) -> None:
        async with StubServer(echo) as srv, Client(srv.addr, TOKEN) as client:
            bad_refs = ["sg://payments/db", "sg://Payments/db/k", "sg://p/s/k?version=01", "postgres://x", "sg://p/s/k?v=1"]
            for bad in bad_refs:
                with self.subTest(bad=bad), self.assertRaises(secretgate.InvalidArgument) as cm:
                    await client.secrets.resolve(["sg://payments/db/user", bad])
                self.assertIn(repr(bad), str(cm.exception))
            with self.assertRaises(secretgate.InvalidArgument):
                await client.secrets.resolve([])
            with self.assertRaises(TypeError):
                await client.secrets.resolve("sg://payments/db/user")
        self.assertEqual(srv.requests, [])

    async def test_errors_and_incomplete_answers(self) -> None:
        def not_found(_: Request) -> bytes:
            message = 'secret "db" not found in project "payments" (reference "sg://payments/db/k")'
            return error_answer(404, "not_found", message)

        async with StubServer(not_found) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(secretgate.NotFound, "sg://payments/db/k"):
                await client.secrets.resolve(["sg://payments/db/k"])

        def partial(_: Request) -> bytes:
            return json_answer(200, {"values": {}})

        async with StubServer(partial) as srv, Client(srv.addr, TOKEN) as client:
            with self.assertRaisesRegex(secretgate.SecretgateError, "lacks reference"):
                await client.secrets.resolve(["sg://payments/db/k"])


if __name__ == "__main__":
    unittest.main()
