"""The API's JSON shapes as dataclasses.

Unknown fields in answers are ignored, so a newer gateway that adds fields
does not break an older SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

__all__ = ["Metadata", "Secret", "VersionInfo", "Project", "Migration", "Event"]

# RFC 3339 as the gateway writes it (Go's RFC3339Nano, UTC). Parsed by hand
# because datetime.fromisoformat accepts neither "Z" nor nanoseconds before
# Python 3.11.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)


def parse_time(value: object) -> datetime | None:
    """An aware datetime from an RFC 3339 string; None for "" (the gateway's
    zero time) or a missing field. Digits below microseconds are dropped."""
    if not isinstance(value, str) or not value:
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    base, fraction, zone = m.groups()
    micros = (fraction or "")[:6].ljust(6, "0")
    zone = "+00:00" if zone.upper() == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micros}{zone}")


@dataclass
class Metadata:
    """Everything about a secret but its values: what lists, describe and
    every write answer."""

    project: str
    name: str
    keys: list[str]
    version: int
    labels: dict[str, str]
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Metadata:
        """Build from the API's metadata object."""
        return cls(**_metadata_fields(obj))


def _metadata_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "project": obj.get("project", ""),
        "name": obj.get("name", ""),
        "keys": list(obj.get("keys") or []),
        "version": int(obj.get("version", 0)),
        "labels": dict(obj.get("labels") or {}),
        "created_at": parse_time(obj.get("created_at")),
        "updated_at": parse_time(obj.get("updated_at")),
    }


@dataclass
class Secret(Metadata):
    """Metadata plus the values of one version.

    ``data`` is left out of repr() and str(), which show the keys only, so
    that printing or logging a Secret never reveals a value. ``data`` itself
    is a plain dict: printing *it* prints the values.
    """

    data: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Secret:
        """Build from the API's read answer (metadata plus ``data``)."""
        return cls(**_metadata_fields(obj), data=dict(obj.get("data") or {}))


@dataclass
class VersionInfo:
    """One stored version of a secret."""

    version: int
    created_at: datetime | None
    # The version's key names, sorted, from versions(keys=True) for the
    # newest 20 versions; None when not asked for or not known.
    keys: list[str] | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VersionInfo:
        """Build from one entry of ``versions``."""
        keys = obj.get("keys")
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise TypeError("keys is not a list of strings")
        return cls(
            version=int(obj.get("version", 0)),
            created_at=parse_time(obj.get("created_at")),
            keys=None if keys is None else list(keys),
        )


@dataclass
class Project:
    """A project the caller has a binding on, with the actions granted on
    every secret of it (a binding narrowed by globs may allow more on the
    secrets it matches)."""

    name: str
    actions: list[str]

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Project:
        """Build from one entry of ``projects``."""
        return cls(name=obj.get("name", ""), actions=list(obj.get("actions") or []))


@dataclass
class Migration:
    """A migration's request and progress (the gateway's MigrationReport).

    ``errors`` is keyed by secret name (or ``project:P``, ``switch``,
    ``resume``) and holds error classes, never a value.
    """

    id: str
    state: str
    source: str
    target: str
    projects: list[str]
    versions: str
    on_conflict: str
    dry_run: bool
    switch: bool
    delete_source: bool
    workers: int
    switched: bool
    total: int
    copied: int
    skipped: int
    failed: int
    verified: int
    deleted: int
    kept: int
    resumed: int
    errors: dict[str, str]
    started_by: str
    request_id: str
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        """Whether the migration has ended, successfully or not."""
        return self.state not in ("", "running")

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Migration:
        """Build from the API's report object."""
        return cls(
            id=obj.get("id", ""),
            state=obj.get("state", ""),
            source=obj.get("source", ""),
            target=obj.get("target", ""),
            projects=list(obj.get("projects") or []),
            versions=obj.get("versions", ""),
            on_conflict=obj.get("on_conflict", ""),
            dry_run=bool(obj.get("dry_run", False)),
            switch=bool(obj.get("switch", False)),
            delete_source=bool(obj.get("delete_source", False)),
            workers=int(obj.get("workers", 0)),
            switched=bool(obj.get("switched", False)),
            total=int(obj.get("total", 0)),
            copied=int(obj.get("copied", 0)),
            skipped=int(obj.get("skipped", 0)),
            failed=int(obj.get("failed", 0)),
            verified=int(obj.get("verified", 0)),
            deleted=int(obj.get("deleted", 0)),
            kept=int(obj.get("kept", 0)),
            resumed=int(obj.get("resumed", 0)),
            errors=dict(obj.get("errors") or {}),
            started_by=obj.get("started_by", ""),
            request_id=obj.get("request_id", ""),
            started_at=parse_time(obj.get("started_at")),
            finished_at=parse_time(obj.get("finished_at")),
        )


@dataclass
class Event:
    """A change of a secret, or a resync notice, as ``client.secrets.watch``
    delivers it: names and numbers, never a value.

    ``kind`` is ``secret.created``, ``secret.updated``, ``secret.deleted`` or
    ``resync`` (also ``Event.CREATED`` ... ``Event.RESYNC``); a kind this SDK
    does not know yet is delivered as it came, so ignore the kinds you do not
    know. ``version`` is the version the write made, 0 for a delete and a
    resync. ``index`` is the gateway's per-project counter of events, which
    ``watch(last_event_id=...)`` resumes after. A resync carries no name: the
    gateway no longer holds the events that were missed, so read again
    (``list``, ``get``) what you care about.
    """

    CREATED: ClassVar[str] = "secret.created"
    UPDATED: ClassVar[str] = "secret.updated"
    DELETED: ClassVar[str] = "secret.deleted"
    RESYNC: ClassVar[str] = "resync"

    kind: str
    project: str
    name: str
    version: int
    index: int

    @classmethod
    def from_json(cls, kind: str, obj: object) -> Event:
        """Build from an event's kind (its ``event:`` field) and the JSON of
        its ``data:``. Fields of the wrong type raise TypeError, as a Go
        client's decoding would fail on them."""
        if not isinstance(obj, dict):
            raise TypeError("event data is not a JSON object")
        project, name = obj.get("project", ""), obj.get("name", "")
        version, index = obj.get("version", 0), obj.get("index", 0)
        if not isinstance(project, str) or not isinstance(name, str):
            raise TypeError("event project and name must be strings")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (version, index)):
            raise TypeError("event version and index must be integers")
        return cls(kind=kind, project=project, name=name, version=version, index=index)
