"""Typed errors of the secretgate API.

Every error the gateway answers becomes a :class:`SecretgateError` subclass
chosen by the ``code`` of the API's error envelope, mirroring the Go client's
mapping (``sdk/client/errors.go``). Messages are the server's own, which name
projects, secrets, keys and fields but never hold a value; the SDK never puts
a request body into an exception either, so printing or logging one is safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus

__all__ = [
    "SecretgateError",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "VersionMismatch",
    "PayloadTooLarge",
    "Unavailable",
    "Unreachable",
    "MigrationInProgress",
    "InternalError",
]


class SecretgateError(Exception):
    """An error answered by the gateway, or found by the SDK before sending.

    ``status`` is the HTTP status, or None when no answer was involved (a
    bad argument caught before any request, an unreachable gateway).
    ``request_id`` is the exchange's ``X-Request-Id``, which the gateway
    writes into every audit record and log line about the request.
    """

    def __init__(self, code: str, status: int | None, message: str, request_id: str | None = None) -> None:
        super().__init__(code, status, message, request_id)
        self.code = code
        self.status = status
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        text = self.code if self.status is None else f"{self.code} ({self.status})"
        text += f": {self.message}"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class InvalidArgument(SecretgateError):
    """400 ``invalid_argument``: a bad name, key, label, body, version or
    If-Match. The message names the field; it never echoes a value."""


class Unauthenticated(SecretgateError):
    """401 ``unauthenticated``: no token, or one the gateway does not know."""


class PermissionDenied(SecretgateError):
    """403 ``permission_denied``: bound to the project, but the role (or the
    binding's secret globs) does not allow the action."""


class NotFound(SecretgateError):
    """404 ``not_found``: no such secret, version, migration, or a project the
    caller has no binding on (the gateway never says which)."""


class AlreadyExists(SecretgateError):
    """409 ``already_exists``: a create or copy onto an existing name."""


class VersionMismatch(SecretgateError):
    """412 ``version_mismatch``: the latest version is not the one given as
    ``if_match``; nothing was changed."""


class PayloadTooLarge(SecretgateError):
    """413 ``payload_too_large``: the request body is over the gateway's limit."""


class Unavailable(SecretgateError):
    """503 ``backend_unavailable``: the project's backend is down or
    restarting, or the audit log cannot be written. ``retry_after`` is the
    server's ``Retry-After`` in seconds, when it sent one.

    A write answered so may nevertheless have been stored (its plugin died
    after storing it). The client never sends a write twice by itself: retry
    it with ``if_match``, and read the secret back if that raises
    :class:`VersionMismatch`."""

    def __init__(
        self,
        code: str,
        status: int | None,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, status, message, request_id)
        self.retry_after = retry_after


class Throttled(Unavailable):
    """429 ``backend_throttled``: the backend's cloud service refused the
    call for a quota or rate limit, which the message names. Retry after
    ``retry_after`` seconds; at once will not help."""


class Unreachable(Unavailable):
    """No answer from the gateway: connection refused or reset, TLS failure,
    timeout, or an answer that is not HTTP. It is an :class:`Unavailable`, as
    in the Go client, because retrying later may help; but a write that
    reached the gateway (a reset, a timeout) may nevertheless have been
    applied, so retry writes only with ``if_match``."""


class MigrationInProgress(SecretgateError):
    """409 ``migration_in_progress``: the project is read-only while a
    migration copies it, or is already being migrated."""


class InternalError(SecretgateError):
    """500 ``internal``: a bug in the gateway; the message carries the
    request id to look up in the server's log."""


_CODE_CLASSES: dict[str, type[SecretgateError]] = {
    "invalid_argument": InvalidArgument,
    "unauthenticated": Unauthenticated,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "version_mismatch": VersionMismatch,
    "payload_too_large": PayloadTooLarge,
    "backend_unavailable": Unavailable,
    "backend_throttled": Throttled,
    "migration_in_progress": MigrationInProgress,
    "internal": InternalError,
}

# Codes guessed from the status when an answer carries no envelope (a proxy
# in between, say), the same guesses as the Go client's codeForStatus.
_STATUS_CODES: dict[int, str] = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    412: "version_mismatch",
    413: "payload_too_large",
    429: "backend_throttled",
    500: "internal",
    502: "backend_unavailable",
    503: "backend_unavailable",
    504: "backend_unavailable",
}


def from_response(status: int, headers: Mapping[str, str], body: bytes, request_id: str | None) -> SecretgateError:
    """Build the error for a non-2xx answer.

    The message is taken from the gateway's envelope only: any other body
    (a proxy's page, say) is not trusted to be free of anything, so then
    only the status is reported, as the Go client does.
    """
    code = message = None
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        detail = envelope["error"]
        if isinstance(detail.get("code"), str) and detail["code"]:
            code = detail["code"]
            message = str(detail.get("message", ""))
    if code is None:
        code = _STATUS_CODES.get(status, f"http_{status}")
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP status {status}"
        if 300 <= status < 400:
            # A redirect would carry the bearer token to another address.
            message += f" to {headers.get('location', '?')}: redirects are not followed"
    cls = _CODE_CLASSES.get(code, SecretgateError)
    if issubclass(cls, Unavailable):
        return cls(code, status, message, request_id, retry_after=_retry_after(headers.get("retry-after")))
    return cls(code, status, message, request_id)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header; its HTTP-date form is ignored because
    the gateway only ever sends seconds."""
    if value is None or not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return None
    return float(value.strip())
