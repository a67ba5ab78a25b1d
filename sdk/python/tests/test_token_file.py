"""Offline tests of ``token_file=`` and ``SECRETGATE_TOKEN_FILE``: the token
is read from a file again whenever the file changes, as the Go client's
WithTokenFile and the CLI do, so a rotated Kubernetes projected token or a
renewed CI token is used without a restart; a bad file is refused without
ever repeating what it holds."""

from __future__ import annotations

import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from stub import METADATA, Request, StubServer, error_answer, json_answer  # first: see stub

import secretgate
from secretgate import Client

TOKEN_A = "sg_token-file-a"
TOKEN_B = "sg_token-file-b"  # as long as TOKEN_A: an in-place rewrite keeps the size
# A token that must never be repeated in an error: it is refused for its
# whitespace, and the error still must not quote it.
LEAKY = "CANARY-7d1f0a token"


class TokenFileCase(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.path = self.dir / "token"
        env = mock.patch.dict(os.environ, {}, clear=True)
        env.start()
        self.addCleanup(env.stop)

    def write(self, content: str | bytes, path: Path | None = None) -> Path:
        """Write the token file in place (same inode), mode 0600."""
        path = path or self.path
        data = content.encode("latin-1") if isinstance(content, str) else content
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path


class ConfigTest(TokenFileCase):
    def test_where_the_token_comes_from(self) -> None:
        self.write(TOKEN_A + "\n")
        other = self.write(TOKEN_B, self.dir / "other")
        cases = [
            # (name, environment, arguments, token sent)
            ("argument", {}, dict(token_file=self.path), TOKEN_A),
            ("path-like or str", {}, dict(token_file=str(self.path)), TOKEN_A),
            ("variable", {"SECRETGATE_TOKEN_FILE": str(self.path)}, {}, TOKEN_A),
            ("token= wins over the variables", {"SECRETGATE_TOKEN_FILE": str(self.path)}, dict(token=TOKEN_B), TOKEN_B),
            ("token_file= wins over the variables", {"SECRETGATE_TOKEN": TOKEN_B, "SECRETGATE_TOKEN_FILE": str(other)}, dict(token_file=self.path), TOKEN_A),
            ("an empty variable is unset", {"SECRETGATE_TOKEN": "", "SECRETGATE_TOKEN_FILE": str(self.path)}, {}, TOKEN_A),
        ]
        for name, env, kwargs, want in cases:
            with self.subTest(name), mock.patch.dict(os.environ, env, clear=True):
                client = Client("http://127.0.0.1:1", **kwargs)
                self.assertEqual(client._authorization("r"), ("Authorization", f"Bearer {want}"))

    def test_refused_configurations(self) -> None:
        self.write(TOKEN_A)
        cases = [
            # (name, environment, arguments, message)
            ("both arguments", {}, dict(token=TOKEN_A, token_file=self.path), "token= and token_file= exclude each other"),
            ("both variables", {"SECRETGATE_TOKEN": TOKEN_A, "SECRETGATE_TOKEN_FILE": str(self.path)}, {}, "SECRETGATE_TOKEN and SECRETGATE_TOKEN_FILE are both set"),
            ("neither", {}, {}, "SECRETGATE_TOKEN_FILE"),
            ("missing file", {}, dict(token_file=self.dir / "absent"), f"token file {self.dir / 'absent'}: No such file"),
            ("a directory", {}, dict(token_file=self.dir), f"token file {self.dir}: Is a directory"),
        ]
        for name, env, kwargs, message in cases:
            with self.subTest(name), mock.patch.dict(os.environ, env, clear=True):
                with self.assertRaises(ValueError) as cm:
                    Client("http://127.0.0.1:1", **kwargs)
                self.assertIn(message, str(cm.exception))

    def test_bad_content_is_refused_without_quoting_it(self) -> None:
        cases = [
            # (name, content, message)
            ("empty", b"", "is empty"),
            ("only whitespace", b" \n\t\r\n", "is empty"),
            ("inner space", LEAKY.encode(), "holds whitespace, control or non-ASCII characters"),
            ("two lines", b"CANARY-7d1f0a\nsecond\n", "holds whitespace, control or non-ASCII characters"),
            ("control character", b"CANARY-7d1f0a\x00x", "holds whitespace, control or non-ASCII characters"),
            ("DEL", b"CANARY-7d1f0a\x7f", "holds whitespace, control or non-ASCII characters"),
            ("non-ASCII", "CANARY-7d1f0a-é".encode(), "holds whitespace, control or non-ASCII characters"),
            ("too large", b"CANARY-7d1f0a" + b"x" * 70000, "larger than 65536 bytes"),
        ]
        for name, content, message in cases:
            with self.subTest(name):
                self.write(content)
                with self.assertRaises(ValueError) as cm:
                    Client("http://127.0.0.1:1", token_file=self.path)
                text = str(cm.exception) + repr(cm.exception)
                self.assertIn(message, text)
                self.assertIn(str(self.path), text, "the error names the file")
                self.assertNotIn("CANARY", text, "the file's content is never repeated")

    def test_surrounding_whitespace_is_stripped(self) -> None:
        self.write(f" \t{TOKEN_A}\r\n\n")
        client = Client("http://127.0.0.1:1", token_file=self.path)
        self.assertEqual(client._authorization("r"), ("Authorization", f"Bearer {TOKEN_A}"))

    def test_a_jwt_is_a_plain_bearer_token(self) -> None:
        jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IksxIn0.eyJzdWIiOiJyZXBvOmFjbWUvYXBpIn0.c2lnbmF0dXJlLWJ5dGVz_-"
        self.write(jwt + "\n")
        client = Client("http://127.0.0.1:1", token_file=self.path)
        self.assertEqual(client._authorization("r"), ("Authorization", f"Bearer {jwt}"))
        self.assertEqual(Client("http://127.0.0.1:1", jwt)._authorization("r"), ("Authorization", f"Bearer {jwt}"))


class RotationTest(TokenFileCase, unittest.IsolatedAsyncioTestCase):
    """Requests through a stub that records the token each one carried."""

    async def asyncSetUp(self) -> None:
        self.srv = StubServer(lambda r: json_answer(200, METADATA))
        await self.srv.start()
        self.addAsyncCleanup(self.srv.close)

    def client(self, path: Path | None = None) -> Client:
        client = Client(self.srv.addr, token_file=path or self.path)
        self.addAsyncCleanup(client.aclose)
        return client

    def sent(self) -> list[str]:
        return [r.headers["authorization"].removeprefix("Bearer ") for r in self.srv.requests]

    async def test_the_file_is_read_again_when_it_changes(self) -> None:
        cases = [
            # (name, how the file is replaced by one holding TOKEN_B)
            ("rewritten in place, same size", self.rewrite_in_place),
            ("renamed over (a CI runner's renewal)", self.rename_over),
            ("symlink swapped (a Kubernetes projected volume)", self.swap_symlink),
        ]
        for i, (name, rotate) in enumerate(cases):
            with self.subTest(name):
                self.srv.requests.clear()
                path = self.start_file(i, symlinked=rotate == self.swap_symlink)
                client = self.client(path)
                await client.secrets.describe("db")
                await client.secrets.describe("db")
                rotate(path)
                await client.secrets.describe("db")
                self.assertEqual(self.sent(), [TOKEN_A, TOKEN_A, TOKEN_B])

    def start_file(self, i: int, symlinked: bool) -> Path:
        """A token file holding TOKEN_A, laid out as the case needs."""
        if not symlinked:
            return self.write(TOKEN_A, self.dir / f"token-{i}")
        # The kubelet's layout: token -> ..data/token, ..data -> a
        # timestamped directory; a rotation swaps ..data.
        base = self.dir / "projected"
        (base / "v1").mkdir(parents=True)
        self.write(TOKEN_A, base / "v1" / "token")
        (base / "..data").symlink_to("v1")
        (base / "token").symlink_to("..data/token")
        return base / "token"

    def rewrite_in_place(self, path: Path) -> None:
        before = os.stat(path)
        self.write(TOKEN_B, path)
        # The same inode and size: only the modification time tells; the
        # clock may not have ticked since the first write.
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        after = os.stat(path)
        self.assertEqual((after.st_ino, after.st_size), (before.st_ino, before.st_size))

    def rename_over(self, path: Path) -> None:
        fresh = self.write(TOKEN_B, path.with_name(path.name + ".new"))
        self.same_times(path, fresh)
        os.replace(fresh, path)

    def swap_symlink(self, path: Path) -> None:
        base = path.parent
        (base / "v2").mkdir()
        self.same_times(path, self.write(TOKEN_B, base / "v2" / "token"))
        (base / "..data_tmp").symlink_to("v2")
        os.replace(base / "..data_tmp", base / "..data")

    def same_times(self, old: Path, new: Path) -> None:
        """Give the new file the old one's times, as a swap within one tick
        of the file system's clock does: only the inode tells them apart."""
        before = os.stat(old)
        os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))

    async def test_an_unchanged_file_is_not_read_again(self) -> None:
        self.write(TOKEN_A)
        client = self.client()
        await client.secrets.describe("db")
        before = os.stat(self.path)
        # Another token behind the same stamp (inode, size, modification
        # time): the client keeps the token it read, so it did not read.
        self.write(TOKEN_B)
        os.utime(self.path, ns=(before.st_atime_ns, before.st_mtime_ns))
        with mock.patch("builtins.open", side_effect=AssertionError("the token file was read again")):
            await client.secrets.describe("db")
        self.assertEqual(self.sent(), [TOKEN_A, TOKEN_A])

    async def test_a_file_gone_bad_fails_the_request_before_sending(self) -> None:
        self.write(TOKEN_A)
        client = self.client()
        await client.secrets.describe("db")
        for i, (name, spoil) in enumerate(
            [
                ("removed", lambda: os.remove(self.path)),
                ("bad token", lambda: self.write(LEAKY)),
                ("emptied", lambda: self.write(b"")),
            ]
        ):
            with self.subTest(name):
                spoil()
                with self.assertRaises(secretgate.Unauthenticated) as cm:
                    await client.secrets.describe("db")
                e = cm.exception
                self.assertIsNone(e.status, "no answer was involved")
                self.assertIn(str(self.path), e.message)
                self.assertNotIn("CANARY", str(e) + repr(e))
                self.assertEqual(len(self.srv.requests), 1, "nothing was sent")
                # Repaired, the next request goes out with the file's token
                # (its size differs from every earlier content's: a reused
                # inode written within one clock tick is still told apart).
                repaired = f"{TOKEN_B}-{i}"
                self.write(repaired)
                await client.secrets.describe("db")
                self.assertEqual(self.sent()[-1], repaired)
                del self.srv.requests[1:]

    async def test_a_watch_opens_with_the_current_token(self) -> None:
        def handler(r: Request) -> bytes:
            # Refused, so that the opening ends at once: only the token counts.
            return error_answer(401, "unauthenticated", "invalid bearer token")

        self.srv.handler = handler
        self.write(TOKEN_A)
        client = self.client()
        for rotate in (False, True):
            if rotate:
                self.rename_over(self.path)
            with self.assertRaises(secretgate.Unauthenticated):
                async with client.secrets.watch():
                    pass
        self.assertEqual(self.sent(), [TOKEN_A, TOKEN_B])


if __name__ == "__main__":
    unittest.main()
