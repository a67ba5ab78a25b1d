"""Migrations of whole projects between backends: ``client.migrations``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import _validate
from .models import Migration

if TYPE_CHECKING:
    from .client import Client


class Migrations:
    """Migrations of whole projects between backends: ``client.migrations``.
    They run inside the gateway; values never reach the caller."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def start(
        self,
        source: str,
        target: str,
        projects: Iterable[str],
        versions: str = "latest",
        on_conflict: str = "fail",
        dry_run: bool = False,
        switch: bool = False,
        delete_source: bool = False,
        workers: int | None = None,
    ) -> str:
        """Start a migration and return its id at once; follow it with
        ``get`` or ``wait``. Needs ``project.migrate`` on every project."""
        if isinstance(projects, str):
            raise TypeError("projects must be a list of project names, not a str")
        body: dict[str, object] = {
            "source": source,
            "target": target,
            "projects": [_validate.project(p, "projects") for p in projects],
            "versions": versions,
            "on_conflict": on_conflict,
            "dry_run": dry_run,
            "switch": switch,
            "delete_source": delete_source,
        }
        if workers is not None:
            body["workers"] = workers
        return await self._client._call("POST", "/v1/migrations", body=body, parse=lambda obj: str(obj["id"]))

    async def get(self, migration_id: str) -> Migration:
        """A migration's report."""
        path = "/v1/migrations/" + _validate.migration_id(migration_id)
        return await self._client._call("GET", path, parse=Migration.from_json)

    async def list(self) -> list[Migration]:
        """The migrations whose projects the token may all migrate."""
        return await self._client._call(
            "GET", "/v1/migrations", parse=lambda obj: [Migration.from_json(m) for m in obj.get("migrations") or []]
        )

    async def wait(self, migration_id: str, poll: float = 0.5, timeout: float | None = None) -> Migration:
        """Poll until the migration has ended and return its final report,
        whatever its state (check ``state`` and ``errors``). TimeoutError
        after ``timeout`` seconds; the migration itself goes on."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            report = await self.get(migration_id)
            if report.done:
                return report
            if deadline is None:
                await asyncio.sleep(poll)
                continue
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"migration {migration_id} is still running after {timeout} s")
            await asyncio.sleep(min(poll, left))
