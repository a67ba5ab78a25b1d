"""secretgate: the async Python SDK of the secretgate gateway.

    from secretgate import Client

    async with Client() as client:  # SECRETGATE_ADDR, SECRETGATE_TOKEN (or _FILE), SECRETGATE_PROJECT
        for s in await client.secrets.list():
            print(s.name, s.keys)
        secret = await client.secrets.get("payment-service")
        api_key = secret.data["api_key"]

Values travel only in ``Secret.data``: no repr, str, exception or log line of
this package ever shows one.
"""

from ._version import __version__
from ._watch import EventStream
from .client import DEFAULT_ADDR, DEFAULT_PROJECT, Client, Migrations, Platform, Secrets, request_id
from .errors import (
    AlreadyExists,
    InternalError,
    InvalidArgument,
    MigrationInProgress,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    SecretgateError,
    Throttled,
    Unauthenticated,
    Unavailable,
    Unreachable,
    VersionMismatch,
)
from .models import Event, Metadata, Migration, Project, Secret, VersionInfo

__all__ = [
    "__version__",
    "Client",
    "Secrets",
    "Migrations",
    "Platform",
    "request_id",
    "DEFAULT_ADDR",
    "DEFAULT_PROJECT",
    "Metadata",
    "Secret",
    "VersionInfo",
    "Project",
    "Migration",
    "Event",
    "EventStream",
    "SecretgateError",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "VersionMismatch",
    "PayloadTooLarge",
    "Unavailable",
    "Throttled",
    "Unreachable",
    "MigrationInProgress",
    "InternalError",
]
