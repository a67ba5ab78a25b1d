"""The async client of the secretgate HTTP API.

It mirrors the Go client (``sdk/client``): the same routes, validation before
any request, error mapping, ETag/If-Match check-and-set and paging; and it
offers ``client.platform.secrets`` so that code written for the product's
SDK runs unchanged::

    async with Client() as client:          # SECRETGATE_ADDR, SECRETGATE_TOKEN, ...
        secret = await client.platform.secrets.get("payment-service")
        api_key = secret.data["api_key"]
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import _validate
from ._http import ConnectionPool, Response, Stream, TransportError
from ._migrations import Migrations
from ._token import TOKEN, TokenFile
from ._version import __version__
from ._watch import EventStream
from .errors import SecretgateError, Unauthenticated, Unreachable, from_response
from .models import Metadata, Project, Secret, VersionInfo

__all__ = ["Client", "Secrets", "Migrations", "Platform", "request_id", "DEFAULT_ADDR", "DEFAULT_PROJECT"]

DEFAULT_ADDR = "http://127.0.0.1:8270"
DEFAULT_PROJECT = "default"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"secretgate-python/{__version__}"
MAX_PAGE_SIZE = 1000
MAX_RESOLVE_REFS = 100
# What the gateway keeps of an incoming X-Request-Id; it replaces anything
# else with a fresh id, which would break the link to the caller's logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("secretgate_request_id", default=None)
_log = logging.getLogger("secretgate")


@contextlib.contextmanager
def request_id(value: str) -> Iterator[None]:
    """Send ``value`` as ``X-Request-Id`` on the requests made inside the block
    (by this task and the tasks it starts), to tie the gateway's audit records
    to the caller's own logs: the gateway keeps it as the records'
    ``client_request_id`` (their ``request_id``, which errors carry, is the
    gateway's own). Outside such a block every request gets a fresh uuid4."""
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise ValueError("a request id must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'")
    token = _request_id.set(value)
    try:
        yield
    finally:
        _request_id.reset(token)


class Client:
    """A client of one gateway with one token; safe for concurrent tasks.

    Arguments left out come from the environment, like the CLI's:
    ``SECRETGATE_ADDR`` (default ``http://127.0.0.1:8270``; a bare
    ``host:port`` means http), ``SECRETGATE_TOKEN`` or
    ``SECRETGATE_TOKEN_FILE`` (one is required), ``SECRETGATE_PROJECT``
    (default ``default``) and ``SECRETGATE_CACERT`` (a PEM file of CAs to
    trust for https instead of the system's). ``token_file`` is a file
    holding the token, read again whenever it changes; ``token`` and
    ``token_file`` exclude each other, and either one makes both variables
    ignored. ``timeout`` bounds each request as a whole, in seconds (None: no
    bound); ``max_connections`` bounds the keep-alive connections in use at
    once.

    Use it as ``async with Client(...) as client:`` or call ``aclose()``; a
    client left open (made at module level, say) closes its connections
    when ``asyncio.run`` ends. A client belongs to the event loop it is
    used in, and to the next one once that loop has ended.
    """

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        project: str | None = None,
        *,
        token_file: str | os.PathLike[str] | None = None,
        cafile: str | os.PathLike[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_connections: int = 10,
    ) -> None:
        addr = addr or os.environ.get("SECRETGATE_ADDR") or DEFAULT_ADDR
        project = project or os.environ.get("SECRETGATE_PROJECT") or DEFAULT_PROJECT
        cafile = cafile or os.environ.get("SECRETGATE_CACERT") or None
        self._token = ""
        self._token_file: TokenFile | None = None
        if token and token_file:
            raise ValueError("token= and token_file= exclude each other: use one")
        if not token and not token_file:
            token, token_file = os.environ.get("SECRETGATE_TOKEN"), os.environ.get("SECRETGATE_TOKEN_FILE")
            if token and token_file:
                raise ValueError("SECRETGATE_TOKEN and SECRETGATE_TOKEN_FILE are both set: use one")
        if token_file:
            self._token_file = TokenFile(token_file)
            self._token_file.current()  # a missing or bad file fails here, not at the first request
        elif not token:
            raise ValueError("no token: pass token= or token_file=, or set SECRETGATE_TOKEN or SECRETGATE_TOKEN_FILE")
        elif not TOKEN.fullmatch(token):
            raise ValueError("the token holds whitespace, control or non-ASCII characters")
        else:
            self._token = token
        try:
            self.project = _validate.project(project)
        except SecretgateError as exc:
            raise ValueError(exc.message) from None
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive, or None for no bound")
        self.timeout = timeout

        if "://" not in addr:
            addr = "http://" + addr
        url = urlsplit(addr)
        scheme = url.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"address: scheme {url.scheme!r} is neither http nor https")
        if url.username is not None or url.password is not None:
            raise ValueError("address: credentials in the address are not supported; pass the token")
        if not url.hostname:
            raise ValueError(f"address {addr!r} has no host")
        port = url.port or (443 if scheme == "https" else 80)
        self._base_path = quote(url.path.rstrip("/"), safe="/%")
        self.addr = f"{scheme}://{url.netloc}{self._base_path}"
        tls = ssl.create_default_context(cafile=os.fspath(cafile) if cafile else None) if scheme == "https" else None
        self._pool = ConnectionPool(url.hostname, port, tls, max_connections=max_connections)

        self.secrets = Secrets(self)
        self.platform = Platform(self.secrets)
        self.migrations = Migrations(self)

    def __repr__(self) -> str:
        return f"Client(addr={self.addr!r}, project={self.project!r})"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        await self._pool.aclose()

    def _authorization(self, rid: str) -> tuple[str, str]:
        """The Authorization header for the next request: with a token file,
        its token as of now."""
        if self._token_file is None:
            return ("Authorization", f"Bearer {self._token}")
        try:
            return ("Authorization", f"Bearer {self._token_file.current()}")
        except ValueError as exc:
            # Nothing was sent: the request id only ties it to the caller's logs.
            raise Unauthenticated("unauthenticated", None, str(exc), rid) from None

    async def projects(self) -> list[Project]:
        """The projects the token has a binding on, with the actions it is
        granted on all their secrets (``GET /v1/projects``)."""
        return await self._call(
            "GET", "/v1/projects", parse=lambda obj: [Project.from_json(p) for p in obj.get("projects") or []]
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Any], Any] | None,
        query: Mapping[str, str] | None = None,
        body: object = None,
        if_match: int | None = None,
    ) -> Any:
        """Send one request; decode a 2xx JSON answer with ``parse``, raise
        the typed error of any other."""
        target = self._base_path + path
        if query:
            target += "?" + urlencode(query)
        rid = _request_id.get() or str(uuid.uuid4())
        headers = [
            self._authorization(rid),
            ("Accept", "application/json"),
            ("User-Agent", USER_AGENT),
            ("X-Request-Id", rid),
        ]
        payload = None
        if body is not None:
            # Strings were checked to be encodable, so this cannot fail on a
            # value (and so never quotes one in an exception).
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers.append(("Content-Type", "application/json"))
        if if_match is not None:
            headers.append(("If-Match", f'"{if_match}"'))
        try:
            resp = await self._pool.request(method, target, headers, payload, self.timeout)
        except TransportError as exc:
            _log.debug("%s %s -> no answer: %s [request %s]", method, target, exc, rid)
            raise Unreachable("unreachable", None, f"cannot reach the gateway at {self.addr}: {exc}", rid) from exc
        rid = resp.headers.get("x-request-id") or rid
        _log.debug("%s %s -> %d [request %s]", method, target, resp.status, rid)
        if not 200 <= resp.status < 300:
            raise from_response(resp.status, resp.headers, resp.body, rid)
        if parse is None:
            return None
        try:
            return parse(json.loads(resp.body))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise SecretgateError(
                "invalid_response", resp.status, f"the answer to {method} {path} is not the API's JSON", rid
            ) from None

    async def _open_stream(
        self, path: str, query: Mapping[str, str] | None, last_event_id: str | None, timeout: float
    ) -> Stream:
        """Open one event stream (GET ``path``); raise the typed error of any
        answer but a 200 ``text/event-stream``."""
        target = self._base_path + path
        if query:
            target += "?" + urlencode(query)
        rid = _request_id.get() or str(uuid.uuid4())
        headers = [
            self._authorization(rid),
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("User-Agent", USER_AGENT),
            ("X-Request-Id", rid),
        ]
        if last_event_id is not None:
            headers.append(("Last-Event-ID", last_event_id))
        try:
            resp = await self._pool.stream(target, headers, timeout)
        except TransportError as exc:
            _log.debug("GET %s -> no answer: %s [request %s]", target, exc, rid)
            raise Unreachable("unreachable", None, f"cannot reach the gateway at {self.addr}: {exc}", rid) from exc
        rid = resp.headers.get("x-request-id") or rid
        _log.debug("GET %s -> %d (event stream) [request %s]", target, resp.status, rid)
        if isinstance(resp, Response):
            if 200 <= resp.status < 300:
                raise SecretgateError(
                    "invalid_response", resp.status, f"the answer to GET {path} is not an event stream", rid
                )
            raise from_response(resp.status, resp.headers, resp.body, rid)
        media_type = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "text/event-stream":
            resp.close()
            kind = media_type or "untyped"
            raise SecretgateError(
                "invalid_response", 200, f"the answer to GET {path} is {kind}, not an event stream", rid
            )
        return resp


class Secrets:
    """The secrets API: ``client.secrets``, also ``client.platform.secrets``.

    ``project`` defaults to the client's. Reads of values need the
    ``secrets.read`` action; lists and ``describe`` show metadata only.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def _collection(self, project: str | None) -> str:
        p = _validate.project(self._client.project if project is None else project)
        return f"/v1/projects/{p}/secrets"

    def _item(self, name: str, project: str | None) -> str:
        collection = self._collection(project)
        return f"{collection}/{_validate.name(name)}"

    async def iter(
        self, prefix: str | None = None, *, project: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Metadata]:
        """Yield the metadata of every secret (sorted by name, optionally
        only names starting with ``prefix``) that the token's bindings
        cover, fetching one page at a time."""
        path = self._collection(project)
        query: dict[str, str] = {}
        if prefix:
            query["prefix"] = prefix
        if page_size is not None:
            if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
                raise _validate.invalid("page_size", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
            query["page_size"] = str(page_size)
        token = ""
        while True:
            page, next_token = await self._client._call(
                "GET", path, query={**query, "page_token": token} if token else query, parse=_page
            )
            for meta in page:
                yield meta
            if not next_token:
                return
            if next_token == token:
                raise SecretgateError("invalid_response", 200, "the gateway repeated a page token", None)
            token = next_token

    async def list(
        self, prefix: str | None = None, *, project: str | None = None, page_size: int | None = None
    ) -> list[Metadata]:
        """Metadata of every secret the token's bindings cover, all pages."""
        return [meta async for meta in self.iter(prefix, project=project, page_size=page_size)]

    async def get(self, name: str, version: int | None = None, *, project: str | None = None) -> Secret:
        """Read the values of the latest version, or of ``version``."""
        path = self._item(name, project)
        query = None if version is None else {"version": str(_validate.positive("version", version))}
        return await self._client._call("GET", path, query=query, parse=Secret.from_json)

    async def resolve(self, refs: Iterable[str]) -> dict[str, str]:
        """The value of every reference ``sg://PROJECT/SECRET/KEY`` (optionally
        ``?version=N``), keyed by the reference as given, through
        ``POST /v1/resolve``: each needs ``secrets.read`` on its secret and is
        audited as a read. All or nothing: the first reference that is not
        found or not allowed raises (``NotFound``, ``PermissionDenied``) with a
        message naming it, never a value. Malformed references raise
        ``InvalidArgument`` before anything is sent; repeats are asked once;
        more than 100 distinct references take one request per 100."""
        if isinstance(refs, str):
            raise TypeError("refs must be an iterable of references, not a single str")
        unique = list(dict.fromkeys(_validate.reference(r) for r in refs))
        if not unique:
            raise _validate.invalid("refs", "holds no reference")
        values: dict[str, str] = {}
        for start in range(0, len(unique), MAX_RESOLVE_REFS):
            batch = unique[start : start + MAX_RESOLVE_REFS]
            got = await self._client._call("POST", "/v1/resolve", body={"refs": batch}, parse=_values)
            for ref in batch:
                if ref not in got:
                    raise SecretgateError("invalid_response", 200, f"the answer lacks reference {ref!r}", None)
                values[ref] = got[ref]
        return values

    def watch(
        self, secrets: str | None = None, *, project: str | None = None, last_event_id: int | None = None
    ) -> EventStream:
        """Follow the changes of the project's secrets as they happen
        (``GET /v1/projects/{project}/events``, which needs ``secrets.list``)::

            async with client.secrets.watch("stripe-*") as events:
                async for event in events:
                    ...  # event.kind, event.name, event.version

        Events come only for the secrets the token's bindings cover and, with
        ``secrets``, whose names match that glob (``*``, ``?``, ``[...]``).
        ``last_event_id`` resumes after the event of that ``index`` (0: every
        event the gateway still holds); by default the stream starts with
        the next write. The stream reconnects by itself without losing
        events; see :class:`EventStream`. Arguments are checked here, before
        anything is sent."""
        p = _validate.project(self._client.project if project is None else project)
        glob = None if secrets is None else _validate.glob(secrets)
        query = {"secrets": glob} if glob else None  # "" is every secret, as for the gateway
        start = _validate.event_id("last_event_id", last_event_id)
        client = self._client
        path = f"/v1/projects/{p}/events"

        def opener(last_id: str | None, timeout: float) -> Awaitable[Stream]:
            return client._open_stream(path, query, last_id, timeout)

        return EventStream(path, opener, None if start is None else str(start), client.timeout)

    async def describe(self, name: str, *, project: str | None = None) -> Metadata:
        """Read the metadata only (``secrets.list`` is enough)."""
        return await self._client._call("GET", self._item(name, project) + "/metadata", parse=Metadata.from_json)

    async def versions(self, name: str, *, keys: bool = False, project: str | None = None) -> list[VersionInfo]:
        """The versions the backend still holds, oldest first. With ``keys``,
        the newest 20 also carry their key names (``VersionInfo.keys``): what
        each rotation added or removed. The gateway reads those versions
        itself and answers no value, so ``secrets.list`` is enough either way."""
        if not isinstance(keys, bool):
            raise TypeError(f"keys must be a bool, not {type(keys).__name__}")
        return await self._client._call(
            "GET",
            self._item(name, project) + "/versions",
            query={"keys": "true"} if keys else None,
            parse=lambda obj: [VersionInfo.from_json(v) for v in obj.get("versions") or []],
        )

    async def rollback(
        self, name: str, version: int, *, if_match: int | None = None, project: str | None = None
    ) -> Metadata:
        """Write the data of ``version`` as a new version (the labels stay as
        they are) and return its metadata. It needs ``secrets.update``, not
        ``secrets.read``: the values never leave the gateway, so an editor
        can undo a bad rotation of values it cannot read. NotFound names a
        version no longer stored; ``if_match`` as for ``update``."""
        path = self._item(name, project) + "/rollback"
        body = {"version": _validate.positive("version", version)}
        return await self._client._call(
            "POST", path, body=body, if_match=_if_match(if_match), parse=Metadata.from_json
        )

    async def create(
        self,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str] | None = None,
        *,
        project: str | None = None,
    ) -> Metadata:
        """Create a secret at version 1; AlreadyExists if the name is taken."""
        path = self._collection(project)
        body: dict[str, object] = {"name": _validate.name(name), "data": _data(data)}
        if labels is not None:
            body["labels"] = _validate.strings("labels", labels)
        return await self._client._call("POST", path, body=body, parse=Metadata.from_json)

    async def update(
        self,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str] | None = None,
        *,
        if_match: int | None = None,
        project: str | None = None,
    ) -> Metadata:
        """Replace every key/value pair (PUT, a new version). ``labels`` None
        keeps the labels, ``{}`` clears them. ``if_match``: write only if the
        latest version is that one, else VersionMismatch."""
        path = self._item(name, project)
        body: dict[str, object] = {"data": _data(data)}
        if labels is not None:
            body["labels"] = _validate.strings("labels", labels)
        return await self._client._call("PUT", path, body=body, if_match=_if_match(if_match), parse=Metadata.from_json)

    async def patch(
        self,
        name: str,
        set: Mapping[str, str] | None = None,
        unset: Iterable[str] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        if_match: int | None = None,
        project: str | None = None,
    ) -> Metadata:
        """Set the keys of ``set`` and remove those of ``unset``, keeping the
        others (a new version). It needs no right to read: it is how a key is
        rotated without knowing the others. ``labels`` replaces the labels
        (``{}`` clears them; None keeps them), alone or with key changes."""
        path = self._item(name, project)
        if isinstance(unset, str):
            raise TypeError("unset must be a list of keys, not a str")
        to_set = _data(set or {}, "set")
        to_unset = _validate.keys("unset", unset or [])
        if not to_set and not to_unset and labels is None:
            raise _validate.invalid("set", "a patch must set or unset at least one key, or give labels")
        body: dict[str, object] = {"set": to_set, "unset": to_unset}
        if labels is not None:
            body["labels"] = _validate.strings("labels", labels)
        return await self._client._call(
            "PATCH", path, body=body, if_match=_if_match(if_match), parse=Metadata.from_json
        )

    async def delete(self, name: str, *, if_match: int | None = None, project: str | None = None) -> None:
        """Delete the secret with all its versions."""
        await self._client._call("DELETE", self._item(name, project), if_match=_if_match(if_match), parse=None)

    async def copy(
        self,
        name: str,
        *,
        to_project: str | None = None,
        as_name: str | None = None,
        version: int | None = None,
        overwrite: bool = False,
        project: str | None = None,
    ) -> Metadata:
        """Copy one version (latest by default) with its labels to another
        project and/or name, inside the gateway: the value never reaches the
        caller, and the answer is the copy's metadata. ``overwrite`` writes a
        new version of an existing target instead of AlreadyExists."""
        path = self._item(name, project) + "/copy"
        body: dict[str, object] = {}
        if to_project is not None:
            body["to_project"] = _validate.project(to_project, "to_project")
        if as_name is not None:
            body["as"] = _validate.name(as_name, "as")
        if version is not None:
            body["version"] = _validate.positive("version", version)
        if overwrite:
            body["overwrite"] = True
        return await self._client._call("POST", path, body=body, parse=Metadata.from_json)


class Platform:
    """``client.platform``: holds ``secrets`` where code written against the
    product's SDK (``client.platform.secrets.list()``) expects it."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets


def _values(obj: dict[str, Any]) -> dict[str, str]:
    values = obj["values"]
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise TypeError("values is not an object of strings")
    return values


def _page(obj: dict[str, Any]) -> tuple[list[Metadata], str]:
    return [Metadata.from_json(m) for m in obj.get("secrets") or []], str(obj.get("next_page_token") or "")


def _data(data: Mapping[str, str], field: str = "data") -> dict[str, str]:
    checked = _validate.strings(field, data)
    _validate.keys(field, checked)
    return checked


def _if_match(version: int | None) -> int | None:
    return None if version is None else _validate.positive("if_match", version)
