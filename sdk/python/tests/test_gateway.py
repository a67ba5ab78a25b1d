"""The SDK against a real gateway.

The Go test TestPythonClient (internal/e2e/python_test.go) starts one and
runs these tests with its address and tokens in the environment:

    SECRETGATE_TEST_ADDR           the gateway
    SECRETGATE_TEST_ADMIN_TOKEN    role admin on every project
    SECRETGATE_TEST_EDITOR_TOKEN   role editor on SECRETGATE_TEST_PROJECT
    SECRETGATE_TEST_READER_TOKEN   role reader on SECRETGATE_TEST_PROJECT
    SECRETGATE_TEST_PROJECT        the main project
    SECRETGATE_TEST_OTHER_PROJECT  a project on another backend
    SECRETGATE_TEST_CANARY         a value that must never show outside data
    SECRETGATE_TEST_MIGRATE_SOURCE, SECRETGATE_TEST_MIGRATE_TARGET
                                   backends for a dry-run migration (optional)
    SECRETGATE_TEST_TLS_ADDR, SECRETGATE_TEST_TLS_TOKEN, SECRETGATE_TEST_TLS_CACERT
                                   an https gateway and its CA (optional)

Each test works on secrets of its own (random names), so the order of the
tests does not matter and they can run again on the same gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path
from secrets import token_hex
from unittest import mock

from stub import free_port  # first: see stub

import secretgate
from secretgate import Client, Metadata, Secret

ENV = os.environ.get
ADDR = ENV("SECRETGATE_TEST_ADDR", "")
PROJECT = ENV("SECRETGATE_TEST_PROJECT", "payments")
OTHER_PROJECT = ENV("SECRETGATE_TEST_OTHER_PROJECT", "billing")
CANARY = ENV("SECRETGATE_TEST_CANARY") or "CANARY" + token_hex(12)
CHECKOUT = str(Path(__file__).resolve().parent.parent)
ALL_ACTIONS = [
    "secrets.list",
    "secrets.read",
    "secrets.create",
    "secrets.update",
    "secrets.delete",
    "project.migrate",
]


@unittest.skipUnless(
    ADDR,
    "SECRETGATE_TEST_ADDR is not set: these tests need a running gateway; "
    "`go test -run TestPythonClient ./internal/e2e/` starts one and runs them",
)
class GatewayTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.admin = self.client(ENV("SECRETGATE_TEST_ADMIN_TOKEN", ""))
        self.editor = self.client(ENV("SECRETGATE_TEST_EDITOR_TOKEN", ""))
        self.reader = self.client(ENV("SECRETGATE_TEST_READER_TOKEN", ""))
        self.prefix = f"py-{token_hex(4)}"

    def client(self, token: str, addr: str = ADDR, project: str = PROJECT, cafile: str | None = None) -> Client:
        """A client closed at the end of the test."""
        client = Client(addr, token, project, cafile=cafile)
        self.addAsyncCleanup(client.aclose)
        return client

    def name(self, suffix: str) -> str:
        """A secret name of this test's own; deleted (in the main and the
        other project) when the test ends."""
        name = f"{self.prefix}-{suffix}"
        self.addAsyncCleanup(self.forget, name, PROJECT)
        self.addAsyncCleanup(self.forget, name, OTHER_PROJECT)
        return name

    async def forget(self, name: str, project: str) -> None:
        try:
            await self.admin.secrets.delete(name, project=project)
        except secretgate.NotFound:
            pass

    def assertHolds(self, secret: Secret, data: dict[str, str]) -> None:
        """Compare values without ever printing them in a failure message."""
        self.assertEqual(sorted(secret.data), sorted(data), "keys differ")
        differ = sorted(k for k in data if secret.data[k] != data[k])
        self.assertEqual(differ, [], "values differ for these keys")

    async def test_seed_snippet_verbatim(self) -> None:
        """The product's SDK snippet runs unchanged through client.platform.secrets."""
        client = self.admin
        for leftover in ("payment-service", "my-secret"):
            await self.forget(leftover, PROJECT)
            self.addAsyncCleanup(self.forget, leftover, PROJECT)
        await client.secrets.create("payment-service", {"api_key": CANARY})

        secrets = await client.platform.secrets.list()          # for s in secrets: s.name, s.keys
        secret = await client.platform.secrets.get("payment-service"); secret.data["api_key"]
        await client.platform.secrets.create("my-secret", {"api_key": "sk-..."})
        await client.platform.secrets.update("my-secret", {"api_key": "sk-new-..."})
        await client.platform.secrets.delete("my-secret")

        listed = {s.name: s.keys for s in secrets}
        self.assertEqual(listed["payment-service"], ["api_key"])
        self.assertTrue(secret.data["api_key"] == CANARY, "the value read back differs")
        with self.assertRaises(secretgate.NotFound):
            await client.platform.secrets.get("my-secret")

    async def test_crud_round_trip(self) -> None:
        name = self.name("crud")
        data = {"user": "app", "password": CANARY}
        created = await self.admin.secrets.create(name, data, {"env": "prod"})
        self.assertEqual((created.project, created.name, created.version), (PROJECT, name, 1))
        self.assertEqual(created.keys, ["password", "user"])
        self.assertIsNotNone(created.created_at)

        secret = await self.reader.secrets.get(name)
        self.assertHolds(secret, data)
        described = await self.editor.secrets.describe(name)
        self.assertIs(type(described), Metadata, "describe carries no values")
        self.assertEqual(described.version, 1)

        updated = await self.editor.secrets.update(name, {"user": "app2"})
        self.assertEqual((updated.version, updated.keys, updated.labels), (2, ["user"], {"env": "prod"}))
        self.assertGreaterEqual(updated.updated_at, created.updated_at)
        self.assertIsNone(await self.editor.secrets.delete(name))
        with self.assertRaises(secretgate.NotFound):
            await self.admin.secrets.get(name)

    async def test_resolve(self) -> None:
        name = self.name("resolve")
        await self.admin.secrets.create(name, {"user": "app", "password": CANARY})
        await self.admin.secrets.patch(name, {"user": "app2"})
        base = f"sg://{PROJECT}/{name}"
        refs = [f"{base}/password", f"{base}/user?version=1", f"{base}/user"]
        got = await self.reader.secrets.resolve(refs)
        self.assertEqual(sorted(got), sorted(refs))
        self.assertTrue(got[f"{base}/password"] == CANARY, "the value resolved differs")
        self.assertEqual((got[f"{base}/user?version=1"], got[f"{base}/user"]), ("app", "app2"))
        with self.assertRaises(secretgate.NotFound) as nf:
            await self.reader.secrets.resolve([f"{base}/password", f"{base}/nokey"])
        self.assertIn(f"{base}/nokey", str(nf.exception))
        with self.assertRaises(secretgate.PermissionDenied) as denied:
            await self.editor.secrets.resolve([f"{base}/password"])
        for e in (nf, denied):
            self.assertNotIn(CANARY, str(e.exception) + repr(e.exception))

    async def test_watch(self) -> None:
        """Writes through the API reach a watcher at once, as names and
        versions only, filtered by the glob; a watch resumes after an index."""
        name, other = self.name("watched"), self.name("other")
        glob = f"{self.prefix}-watch*"

        async def take(events: secretgate.EventStream, n: int) -> list[secretgate.Event]:
            async def collect() -> list[secretgate.Event]:
                return [await events.__anext__() for _ in range(n)]

            return await asyncio.wait_for(collect(), 10)

        async with self.reader.secrets.watch(glob) as events:
            await self.admin.secrets.create(name, {"k": CANARY})
            await self.admin.secrets.create(other, {"k": "not watched"})
            await self.editor.secrets.update(name, {"k": "v2"})
            await self.admin.secrets.delete(name)
            got = await take(events, 3)
        self.assertEqual(
            [(e.kind, e.project, e.name, e.version) for e in got],
            [
                ("secret.created", PROJECT, name, 1),
                ("secret.updated", PROJECT, name, 2),
                ("secret.deleted", PROJECT, name, 0),
            ],
        )
        self.assertLess(got[0].index, got[1].index)
        self.assertEqual(events.last_event_id, str(got[-1].index))
        self.assertNotIn(CANARY, repr(got))

        async with self.reader.secrets.watch(glob, last_event_id=got[0].index) as again:
            self.assertEqual(await take(again, 2), got[1:], "resumed after the created event")
        async with self.admin.secrets.watch(last_event_id=1 << 62) as ahead:
            (resync,) = await take(ahead, 1)
        self.assertEqual((resync.kind, resync.project, resync.name), (secretgate.Event.RESYNC, PROJECT, ""))
        self.assertGreaterEqual(resync.index, got[-1].index, "the latest index, to re-list at")

        with self.assertRaises(secretgate.NotFound, msg="no binding on the other project"):
            async with self.reader.secrets.watch(project=OTHER_PROJECT):
                pass
        with self.assertRaises(secretgate.Unauthenticated):
            async with self.client("sg_not-a-known-token").secrets.watch():
                pass

    async def test_unicode_values(self) -> None:
        name = self.name("unicode")
        data = {
            "latin": "héllo wörld",
            "cjk": "秘密の値",
            "emoji": "🔑🎉 key",
            "rtl": "سر",
            "combining": "e\u0301",
            "empty": "",
            "control": "line1\nline2\ttab\r\x00nul",
            "json": '{"quote": "\\" and \\\\"}',
            "canary": CANARY,
        }
        await self.admin.secrets.create(name, data)
        self.assertHolds(await self.admin.secrets.get(name), data)

    async def test_labels(self) -> None:
        name = self.name("labels")
        meta = await self.admin.secrets.create(name, {"k": "v"}, {"env": "prod", "team": "payments"})
        self.assertEqual(meta.labels, {"env": "prod", "team": "payments"})
        kept = await self.admin.secrets.update(name, {"k": "v2"})
        self.assertEqual(kept.labels, {"env": "prod", "team": "payments"}, "labels=None keeps them")
        replaced = await self.admin.secrets.update(name, {"k": "v3"}, {"env": "dev"})
        self.assertEqual(replaced.labels, {"env": "dev"})
        cleared = await self.admin.secrets.update(name, {"k": "v4"}, {})
        self.assertEqual(cleared.labels, {}, "{} clears them")
        with self.assertRaises(secretgate.InvalidArgument) as cm:
            await self.admin.secrets.update(name, {"k": "v"}, {"Bad Key": "x"})
        self.assertIn("invalid labels", cm.exception.message)
        self.assertEqual(cm.exception.status, 400)

    async def test_versions_and_get_version(self) -> None:
        name = self.name("versions")
        await self.admin.secrets.create(name, {"k": "one"})
        await self.admin.secrets.update(name, {"k": "two"})
        await self.admin.secrets.patch(name, {"k": CANARY})
        versions = await self.admin.secrets.versions(name)
        self.assertEqual([v.version for v in versions], [1, 2, 3])
        self.assertTrue(all(v.created_at is not None for v in versions))
        self.assertHolds(await self.admin.secrets.get(name, version=1), {"k": "one"})
        self.assertHolds(await self.admin.secrets.get(name, 2), {"k": "two"})
        latest = await self.admin.secrets.get(name)
        self.assertEqual(latest.version, 3)
        with self.assertRaises(secretgate.NotFound):
            await self.admin.secrets.get(name, version=99)

    async def test_if_match(self) -> None:
        name = self.name("cas")
        await self.admin.secrets.create(name, {"k": "v1"})
        await self.admin.secrets.update(name, {"k": "v2"}, if_match=1)
        for attempt in (
            self.admin.secrets.update(name, {"k": CANARY}, if_match=1),
            self.admin.secrets.patch(name, {"k": CANARY}, if_match=1),
            self.admin.secrets.delete(name, if_match=1),
        ):
            with self.assertRaises(secretgate.VersionMismatch) as cm:
                await attempt
            self.assertEqual(cm.exception.status, 412)
            self.assertNotIn(CANARY, str(cm.exception) + repr(cm.exception))
        self.assertHolds(await self.admin.secrets.get(name), {"k": "v2"})
        patched = await self.admin.secrets.patch(name, {"k": "v3"}, if_match=2)
        self.assertEqual(patched.version, 3)
        await self.admin.secrets.delete(name, if_match=3)

    async def test_patch_set_and_unset(self) -> None:
        name = self.name("patch")
        await self.admin.secrets.create(name, {"a": "1", "b": "2"})
        meta = await self.editor.secrets.patch(name, set={"c": CANARY}, unset=["a"])
        self.assertEqual((meta.keys, meta.version), (["b", "c"], 2), "an editor rotates keys it cannot read")
        self.assertHolds(await self.reader.secrets.get(name), {"b": "2", "c": CANARY})
        self.assertEqual((await self.admin.secrets.patch(name, unset=["b"])).keys, ["c"])
        with self.assertRaises(secretgate.InvalidArgument) as cm:
            await self.admin.secrets.patch(name, unset=["c"])
        self.assertIn("invalid unset", cm.exception.message, "unsetting every key is refused")

    async def test_patch_labels(self) -> None:
        name = self.name("labels")
        await self.admin.secrets.create(name, {"a": "1"}, labels={"env": "dev"})
        meta = await self.editor.secrets.patch(name, labels={"env": "prod", "team": "pay"})
        self.assertEqual((meta.labels, meta.keys, meta.version), ({"env": "prod", "team": "pay"}, ["a"], 2))
        meta = await self.editor.secrets.patch(name, set={"b": "2"})
        self.assertEqual(meta.labels, {"env": "prod", "team": "pay"}, "labels absent: kept")
        meta = await self.editor.secrets.patch(name, labels={})
        self.assertEqual(meta.labels, {})
        self.assertHolds(await self.reader.secrets.get(name), {"a": "1", "b": "2"})

    async def test_paging_over_many_secrets(self) -> None:
        names = [f"{self.prefix}-page-{i:03d}" for i in range(250)]
        for n in names:
            self.addAsyncCleanup(self.forget, n, PROJECT)
        await asyncio.gather(*(self.admin.secrets.create(n, {"i": n}) for n in names))

        listed = [m.name for m in await self.admin.secrets.list(prefix=f"{self.prefix}-page-")]
        self.assertEqual(listed, names, "every page, sorted by name (default page size: 3 pages)")
        small = [m.name for m in await self.reader.secrets.list(f"{self.prefix}-page-", page_size=7)]
        self.assertEqual(small, names, "36 pages of 7")
        streamed = [m.name async for m in self.editor.secrets.iter(f"{self.prefix}-page-", page_size=100)]
        self.assertEqual(streamed, names)
        everything = [m.name for m in await self.admin.secrets.list()]
        self.assertEqual(everything, sorted(everything))
        self.assertTrue(set(names) <= set(everything))

    async def test_typed_errors(self) -> None:
        name = self.name("errors")
        await self.admin.secrets.create(name, {"password": CANARY})

        nowhere = self.client("any-token", addr=f"127.0.0.1:{free_port()}")
        with self.assertRaises(secretgate.InvalidArgument) as cm:
            await nowhere.secrets.get("no spaces allowed")
        self.assertIn("invalid name", str(cm.exception), "found before any request (else: Unreachable)")
        with self.assertRaises(secretgate.Unreachable) as unreachable:
            await nowhere.secrets.get(name)
        self.assertIsInstance(unreachable.exception, secretgate.Unavailable)

        with self.assertRaises(secretgate.PermissionDenied) as denied:
            await self.editor.secrets.get(name)
        self.assertEqual(denied.exception.status, 403)
        with self.assertRaises(secretgate.PermissionDenied):
            await self.reader.secrets.create(self.name("reader-create"), {"k": "v"})
        with self.assertRaises(secretgate.NotFound) as missing:
            await self.admin.secrets.get(f"{self.prefix}-no-such-secret")
        self.assertEqual(missing.exception.status, 404)
        with self.assertRaises(secretgate.NotFound, msg="no binding there: the project's existence is not revealed"):
            await self.reader.secrets.list(project=OTHER_PROJECT)
        with self.assertRaises(secretgate.AlreadyExists) as exists:
            await self.admin.secrets.create(name, {"password": CANARY})
        self.assertEqual(exists.exception.status, 409)
        with self.assertRaises(secretgate.Unauthenticated) as unauth:
            await self.client("sg_not-a-known-token").secrets.list()
        self.assertEqual(unauth.exception.status, 401)
        with self.assertRaises(secretgate.InvalidArgument) as invalid:
            await self.admin.secrets.create(self.name("empty"), {})
        self.assertEqual((invalid.exception.status, invalid.exception.message[:13]), (400, "invalid data:"))
        with self.assertRaises(secretgate.PayloadTooLarge) as large:
            await self.admin.secrets.create(self.name("large"), {"k": CANARY * 60_000})
        self.assertEqual(large.exception.status, 413)

        self.assertIsNone(cm.exception.request_id, "no request, no request id")
        for e in (unreachable, denied, missing, exists, unauth, invalid, large):
            self.assertIsNotNone(e.exception.request_id)
            self.assertNotIn(CANARY, str(e.exception) + repr(e.exception))

    async def test_request_id_reaches_the_gateway(self) -> None:
        with secretgate.request_id("py-sdk-test-42"):
            with self.assertRaises(secretgate.NotFound) as cm:
                await self.admin.secrets.get(f"{self.prefix}-absent")
        # The gateway files the request under an id of its own (kept in the
        # error) and records the client's as client_request_id.
        rid = cm.exception.request_id
        self.assertIsNotNone(rid)
        self.assertNotEqual(rid, "py-sdk-test-42")
        self.assertEqual(len(rid), 36, rid)

    async def test_twenty_concurrent_tasks_on_one_client(self) -> None:
        async def life(i: int) -> None:
            name = self.name(f"task-{i:02d}")
            await self.admin.secrets.create(name, {"v": f"{i}", "canary": CANARY})
            await self.admin.secrets.patch(name, {"w": f"{i * 2}"})
            secret = await self.admin.secrets.get(name)
            self.assertHolds(secret, {"v": f"{i}", "w": f"{i * 2}", "canary": CANARY})
            await self.admin.secrets.delete(name, if_match=secret.version)

        await asyncio.gather(*(life(i) for i in range(20)))

        shared = self.name("shared")
        await self.admin.secrets.create(shared, {"seed": "0"})
        await asyncio.gather(*(self.admin.secrets.patch(shared, {f"k{i:02d}": f"{i}"}) for i in range(20)))
        final = await self.admin.secrets.describe(shared)
        self.assertEqual(len(final.keys), 21, "concurrent patches of distinct keys lose none")
        self.assertEqual(final.version, 21)

    async def test_copy_across_projects(self) -> None:
        name, copy = self.name("copy-src"), self.name("copy-dst")
        data = {"api_key": CANARY}
        await self.admin.secrets.create(name, data, {"team": "pay"})
        meta = await self.admin.secrets.copy(name, to_project=OTHER_PROJECT, as_name=copy)
        self.assertEqual((meta.project, meta.name, meta.version, meta.labels), (OTHER_PROJECT, copy, 1, {"team": "pay"}))
        self.assertHolds(await self.admin.secrets.get(copy, project=OTHER_PROJECT), data)

        with self.assertRaises(secretgate.AlreadyExists):
            await self.admin.secrets.copy(name, to_project=OTHER_PROJECT, as_name=copy)
        await self.admin.secrets.update(name, {"api_key": "rotated"})
        again = await self.admin.secrets.copy(name, to_project=OTHER_PROJECT, as_name=copy, version=1, overwrite=True)
        self.assertEqual(again.version, 2)
        self.assertHolds(await self.admin.secrets.get(copy, project=OTHER_PROJECT), data)
        with self.assertRaises(secretgate.PermissionDenied, msg="an editor cannot read, so cannot copy"):
            await self.editor.secrets.copy(name, as_name=self.name("editor-copy"))

    async def test_rollback_and_version_keys(self) -> None:
        """An editor, which cannot read, undoes a bad rotation; the history
        says which keys each version held."""
        name = self.name("rollback")
        good = {"user": "app", "password": CANARY}
        await self.admin.secrets.create(name, good)
        await self.admin.secrets.update(name, {"user": "app", "password": "rotated-badly", "extra": "x"})
        await self.admin.secrets.patch(name, labels={"env": "prod"})

        rolled = await self.editor.secrets.rollback(name, version=1)
        self.assertIs(type(rolled), Metadata, "a rollback answers metadata, never values")
        self.assertEqual((rolled.version, rolled.keys, rolled.labels), (4, ["password", "user"], {"env": "prod"}))
        self.assertHolds(await self.reader.secrets.get(name), good)

        with self.assertRaises(secretgate.VersionMismatch):
            await self.editor.secrets.rollback(name, 2, if_match=3)
        again = await self.editor.platform.secrets.rollback(name, 2, if_match=4)
        self.assertEqual(again.version, 5)
        with self.assertRaises(secretgate.NotFound) as nf:
            await self.editor.secrets.rollback(name, 99)
        self.assertIn("99", nf.exception.message, "the missing version is named")
        with self.assertRaises(secretgate.PermissionDenied, msg="a reader may not write"):
            await self.reader.secrets.rollback(name, 1)
        self.assertNotIn(CANARY, str(nf.exception) + repr(nf.exception))

        history = await self.reader.secrets.versions(name, keys=True)
        with_extra, without = ["extra", "password", "user"], ["password", "user"]
        self.assertEqual(
            [(v.version, v.keys) for v in history],
            [(1, without), (2, with_extra), (3, with_extra), (4, without), (5, with_extra)],
        )
        self.assertEqual([v.keys for v in await self.reader.secrets.versions(name)], [None] * 5)

    async def test_token_file_rotation(self) -> None:
        """The token file is read again when it changes: the same client
        goes on as another subject, with no restart."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "token")

        def rotate(token: str) -> None:
            # As a CI runner renews a token: a new file renamed over the old.
            fresh = path + ".new"
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            os.replace(fresh, path)

        def actions(projects: list[secretgate.Project]) -> dict[str, list[str]]:
            return {p.name: p.actions for p in projects}

        reader_view = {PROJECT: ["secrets.list", "secrets.read"]}
        editor_view = {PROJECT: ["secrets.list", "secrets.create", "secrets.update", "secrets.delete"]}
        rotate(ENV("SECRETGATE_TEST_READER_TOKEN", ""))
        with mock.patch.dict(os.environ, {"SECRETGATE_TOKEN_FILE": path, "SECRETGATE_TOKEN": ""}):
            client = Client(ADDR, project=PROJECT)
        self.addAsyncCleanup(client.aclose)
        self.assertEqual(actions(await client.projects()), reader_view)
        rotate(ENV("SECRETGATE_TEST_EDITOR_TOKEN", ""))
        self.assertEqual(actions(await client.projects()), editor_view, "the rotated token is used at once")
        rotate("sg_not-a-known-token")
        with self.assertRaises(secretgate.Unauthenticated) as cm:
            await client.projects()
        self.assertEqual(cm.exception.status, 401)
        rotate(ENV("SECRETGATE_TEST_ADMIN_TOKEN", ""))
        self.assertEqual(actions(await client.projects())[OTHER_PROJECT], ALL_ACTIONS)
        os.remove(path)
        with self.assertRaises(secretgate.Unauthenticated) as gone:
            await client.projects()
        self.assertIsNone(gone.exception.status, "refused before sending")
        self.assertIn(path, gone.exception.message)

    async def test_module_level_client_leaves_nothing_open(self) -> None:
        """The product's snippet, with a module-level client never closed,
        prints no ResourceWarning under -W default, over http and https."""
        script = textwrap.dedent(
            """
            import asyncio, os
            from secretgate import Client

            interactiveai = Client()
            name = os.environ["SNIPPET_SECRET"]

            async def main():
                secrets = await interactiveai.platform.secrets.list()
                await interactiveai.platform.secrets.create(name, {"api_key": "sk-..."})
                secret = await interactiveai.platform.secrets.get(name)
                await interactiveai.platform.secrets.update(name, {"api_key": "sk-new-..."})
                await asyncio.gather(*(interactiveai.platform.secrets.describe(name) for _ in range(4)))
                await interactiveai.platform.secrets.delete(name)
                print("done")

            asyncio.run(main())
            asyncio.run(interactiveai.platform.secrets.list())  # a synchronous script's next step
            """
        )
        gateways = [("http", ADDR, ENV("SECRETGATE_TEST_ADMIN_TOKEN", ""), PROJECT, None)]
        if ENV("SECRETGATE_TEST_TLS_ADDR"):
            tls = ENV("SECRETGATE_TEST_TLS_ADDR", ""), ENV("SECRETGATE_TEST_TLS_TOKEN", ""), "default"
            gateways.append(("https", *tls, ENV("SECRETGATE_TEST_TLS_CACERT")))
        for scheme, addr, token, project, cacert in gateways:
            with self.subTest(scheme):
                env = {
                    "PATH": ENV("PATH", ""),
                    "PYTHONPATH": CHECKOUT,
                    "PYTHONDONTWRITEBYTECODE": "1",
                    "SECRETGATE_ADDR": addr,
                    "SECRETGATE_TOKEN": token,
                    "SECRETGATE_PROJECT": project,
                    "SNIPPET_SECRET": self.name(f"snippet-{scheme}"),
                }
                if cacert:
                    env["SECRETGATE_CACERT"] = cacert
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-W", "default", "-c", script,
                    env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(proc.communicate(), 60)
                self.assertEqual(err.decode(), "", "no ResourceWarning, no error")
                self.assertEqual((proc.returncode, out.decode()), (0, "done\n"))

    async def test_projects(self) -> None:
        admin = {p.name: p.actions for p in await self.admin.projects()}
        self.assertEqual(admin[PROJECT], ALL_ACTIONS)
        self.assertEqual(admin[OTHER_PROJECT], ALL_ACTIONS)
        reader = await self.reader.projects()
        self.assertEqual([(p.name, p.actions) for p in reader], [(PROJECT, ["secrets.list", "secrets.read"])])
        (editor,) = await self.editor.projects()
        self.assertEqual(editor.actions, ["secrets.list", "secrets.create", "secrets.update", "secrets.delete"])

    @unittest.skipUnless(ENV("SECRETGATE_TEST_MIGRATE_SOURCE"), "no second backend to migrate to")
    async def test_dry_run_migration(self) -> None:
        for i in range(3):
            await self.admin.secrets.create(self.name(f"migrate-{i}"), {"k": CANARY})
        source, target = ENV("SECRETGATE_TEST_MIGRATE_SOURCE", ""), ENV("SECRETGATE_TEST_MIGRATE_TARGET", "")
        mid = await self.admin.migrations.start(source, target, [PROJECT], dry_run=True, workers=2)
        report = await self.admin.migrations.wait(mid, poll=0.05, timeout=60)
        self.assertEqual((report.id, report.state, report.errors), (mid, "succeeded", {}))
        self.assertTrue(report.dry_run and not report.switched)
        self.assertEqual((report.source, report.target, report.projects, report.workers), (source, target, [PROJECT], 2))
        self.assertGreaterEqual(report.total, 3)
        self.assertEqual(report.copied, report.total, "a dry run counts what it would copy")
        self.assertIsNotNone(report.finished_at)
        self.assertEqual(await self.admin.migrations.get(mid), report)
        self.assertIn(mid, [m.id for m in await self.admin.migrations.list()])
        self.assertNotIn(mid, [m.id for m in await self.reader.migrations.list()])
        with self.assertRaises(secretgate.PermissionDenied):
            await self.reader.migrations.start(source, target, [PROJECT], dry_run=True)
        with self.assertRaises(secretgate.NotFound):
            await self.admin.migrations.get("no-such-migration")
        with self.assertRaises(secretgate.InvalidArgument) as cm:
            await self.admin.migrations.start(source, source, [PROJECT])
        self.assertIn("invalid target", cm.exception.message)

    async def test_values_never_shown(self) -> None:
        """Neither repr/str of a Secret, nor exceptions, nor the SDK's logs show a value."""
        name = self.name("canary")
        with self.assertLogs("secretgate", logging.DEBUG) as logs:
            await self.admin.secrets.create(name, {"password": CANARY, "user": "app"})
            secret = await self.admin.secrets.get(name)
            errors = []
            for attempt in (
                self.admin.secrets.create(name, {"password": CANARY}),
                self.admin.secrets.update(name, {"password": CANARY}, if_match=9),
                self.editor.secrets.get(name),
                self.reader.secrets.patch(name, {"password": CANARY}),
            ):
                try:
                    await attempt
                except secretgate.SecretgateError as e:
                    errors.append(e)
        self.assertEqual(len(errors), 4)
        shown = [repr(secret), str(secret), f"{secret}", *logs.output]
        shown += [text for e in errors for text in (str(e), repr(e), e.message)]
        self.assertTrue(all(CANARY not in text for text in shown), "a value was shown")
        self.assertIn("keys=['password', 'user']", repr(secret))
        self.assertTrue(secret.data["password"] == CANARY)

    async def test_canary_witness(self) -> None:
        """Leaves the canary in a secret: the Go driver checks it arrived intact,
        so its absence from the gateway's logs and audit means something."""
        try:
            await self.admin.secrets.create("canary-witness", {"value": CANARY})
        except secretgate.AlreadyExists:
            await self.admin.secrets.update("canary-witness", {"value": CANARY})

    @unittest.skipUnless(ENV("SECRETGATE_TEST_TLS_ADDR"), "no https gateway given")
    async def test_https(self) -> None:
        addr, token = ENV("SECRETGATE_TEST_TLS_ADDR", ""), ENV("SECRETGATE_TEST_TLS_TOKEN", "")
        trusted = self.client(token, addr, "default", cafile=ENV("SECRETGATE_TEST_TLS_CACERT"))
        name = f"{self.prefix}-tls"
        await trusted.secrets.create(name, {"k": CANARY})
        self.assertHolds(await trusted.secrets.get(name), {"k": CANARY})
        self.assertEqual([p.name for p in await trusted.projects()], ["default"])
        await trusted.secrets.delete(name)

        with self.assertRaisesRegex(secretgate.Unreachable, "CERTIFICATE_VERIFY_FAILED"):
            await self.client(token, addr, "default").projects()


if __name__ == "__main__":
    unittest.main()
