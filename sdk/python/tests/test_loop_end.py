"""A client made at module level and never closed, as the product SDK's
snippet does, leaves nothing open when ``asyncio.run`` ends: no
``ResourceWarning: unclosed transport`` under ``python3 -W default``, and a
synchronous script may call ``asyncio.run`` for each step with the same
client. Each script runs in a Python of its own against the scripted server,
because the warnings come when that interpreter ends."""

from __future__ import annotations

import asyncio
import os
import sys
import unittest
from collections.abc import AsyncIterator
from pathlib import Path

from stub import METADATA, SSE_HEAD, Request, StubServer, chunk, json_answer, sse  # first: see stub

TOKEN = "sg_loop-end-token"
CHECKOUT = str(Path(__file__).resolve().parent.parent)
# Generous: a Python starts and makes a dozen local requests.
WAIT = 30.0

# The product's snippet, with this SDK's Client in place of its SDK's.
SNIPPET = """
import asyncio
from secretgate import Client

interactiveai = Client()

async def main():
    secrets = await interactiveai.platform.secrets.list()
    for s in secrets:
        print(f"{s.name} (keys: {s.keys})")
    secret = await interactiveai.platform.secrets.get("payment-service")
    payment_api_key = secret.data["api_key"]
    await interactiveai.platform.secrets.create("my-secret", {"api_key": "sk-..."})
    await interactiveai.platform.secrets.update("my-secret", {"api_key": "sk-new-..."})
    await interactiveai.platform.secrets.delete("my-secret")
    # Several connections kept alive at once.
    await asyncio.gather(*(interactiveai.secrets.describe("db") for _ in range(4)))

asyncio.run(main())
"""

# "wrap them in asyncio.run() for synchronous scripts": a new loop per step.
SYNC_SCRIPT = """
import asyncio
from secretgate import Client

client = Client()
for s in asyncio.run(client.platform.secrets.list()):
    print(f"{s.name} (keys: {s.keys})")
print(asyncio.run(client.secrets.describe("db")).version)

async def several():
    return await asyncio.gather(*(client.secrets.describe("db") for _ in range(3)))

print(len(asyncio.run(several())))
"""

# A watch neither closed nor left: the loop's end drops its connection.
WATCH_SCRIPT = """
import asyncio
from secretgate import Client

client = Client()

async def main():
    events = client.secrets.watch()
    event = await events.__anext__()
    print(event.kind, event.name)
    await client.secrets.describe("db")

asyncio.run(main())
"""

# A loop run by hand, shut down as asyncio.run does it; then the same client
# in asyncio.run, and closed there.
MANUAL_LOOP_SCRIPT = """
import asyncio
from secretgate import Client

client = Client()
loop = asyncio.new_event_loop()
print(loop.run_until_complete(client.secrets.describe("db")).version)
loop.run_until_complete(loop.shutdown_asyncgens())
loop.close()

async def last():
    try:
        return (await client.secrets.describe("db")).version
    finally:
        await client.aclose()

print(asyncio.run(last()))
"""


async def _events() -> AsyncIterator[bytes]:
    yield SSE_HEAD
    yield chunk(sse(1, "secret.updated", project="default", name="db", version=3))
    await asyncio.Event().wait()  # open until the client hangs up


def _handler(r: Request) -> bytes | AsyncIterator[bytes]:
    if r.target.endswith("/events"):
        return _events()
    if r.method == "GET" and r.target == "/v1/projects/default/secrets":
        return json_answer(200, {"secrets": [{**METADATA, "name": "payment-service", "keys": ["api_key"]}]})
    if r.method == "GET" and r.target == "/v1/projects/default/secrets/payment-service":
        return json_answer(200, {**METADATA, "name": "payment-service", "keys": ["api_key"], "data": {"api_key": "sk-1"}})
    if r.method == "DELETE":
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    return json_answer(201 if r.method == "POST" else 200, METADATA)


class LoopEndTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.srv = StubServer(_handler)
        await self.srv.start()
        self.addAsyncCleanup(self.srv.close)

    async def run_script(self, script: str) -> tuple[int | None, str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": CHECKOUT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "SECRETGATE_ADDR": self.srv.addr,
            "SECRETGATE_TOKEN": TOKEN,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-W", "default", "-c", script,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), WAIT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode, out.decode(), err.decode()

    async def test_nothing_is_left_open_when_the_loop_ends(self) -> None:
        cases = [
            # (name, script, what it prints)
            ("the product's snippet", SNIPPET, "payment-service (keys: ['api_key'])\n"),
            ("asyncio.run for each step", SYNC_SCRIPT, "payment-service (keys: ['api_key'])\n3\n3\n"),
            ("an abandoned watch", WATCH_SCRIPT, "secret.updated db\n"),
            ("a loop run by hand", MANUAL_LOOP_SCRIPT, "3\n3\n"),
        ]
        for name, script, printed in cases:
            with self.subTest(name):
                before = len(self.srv.requests)
                code, out, err = await self.run_script(script)
                self.assertEqual(err, "", "no warning, no error at the loop's end or the interpreter's")
                self.assertEqual((code, out), (0, printed))
                self.assertGreater(len(self.srv.requests), before)


if __name__ == "__main__":
    unittest.main()
