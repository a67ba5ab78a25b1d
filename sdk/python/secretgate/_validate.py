"""The secret model's name rules (sdk/validate.go, sdk/charset.go), checked
before a request is built.

Projects and names go into URL paths: checking them first means nothing in a
path ever needs escaping and a typo fails with a message naming the field
instead of reaching some other route. Messages say the same as the gateway's
and never quote a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import InvalidArgument

_PROJECT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_MIGRATION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# sg://PROJECT/SECRET/KEY[?version=N], N without leading zeros (sdk/reference.go).
_REFERENCE = re.compile(
    r"sg://[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?/[A-Za-z0-9][A-Za-z0-9_-]{0,127}/[A-Za-z0-9_.-]{1,128}"
    r"(?:\?version=[1-9][0-9]{0,17})?"
)

_PROJECT_RULE = "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
_NAME_RULE = "must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit"
_KEY_RULE = "must be 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'"


def invalid(field: str, reason: str) -> InvalidArgument:
    """An InvalidArgument found before sending, worded like the gateway's."""
    return InvalidArgument("invalid_argument", None, f"invalid {field}: {reason}")


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    return value


def project(value: object, field: str = "project") -> str:
    """Check a project name (``^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$``)."""
    text = _string(field, value)
    if not _PROJECT.fullmatch(text):
        raise invalid(field, _PROJECT_RULE)
    return text


def name(value: object, field: str = "name") -> str:
    """Check a secret name (``^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$``)."""
    text = _string(field, value)
    if not _NAME.fullmatch(text):
        raise invalid(field, _NAME_RULE)
    return text


def reference(value: object, field: str = "reference") -> str:
    """Check a reference ``sg://PROJECT/SECRET/KEY[?version=N]``. It names a
    secret and holds no value, so the message quotes it, shortened."""
    text = _string(field, value)
    if not _REFERENCE.fullmatch(text):
        raise invalid(
            field,
            f"{text[:80]!r} must be sg://PROJECT/SECRET/KEY, optionally followed by ?version=N "
            "(N a positive integer without leading zeros)",
        )
    return text


def glob(value: object, field: str = "secrets") -> str:
    """Check a glob on secret names in the gateway's syntax (Go's
    ``path.Match``: ``*``, ``?``, ``[...]`` with ranges and ``^``, ``\\``
    escapes), refusing what the gateway would answer 400 for. Globs are
    not secret, but one that does not parse is not quoted either: the field
    names it."""
    text = _string(field, value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, "must be valid UTF-8 (it holds a lone surrogate)") from None
    if not _glob_ok(text):
        raise invalid(field, "is not a valid glob (path.Match syntax: *, ?, [...])")
    return text


def _glob_ok(pattern: str) -> bool:
    """Whether Go's path.Match would accept pattern: it splits the pattern
    into chunks at each ``*`` outside a class and parses every chunk."""
    rest = pattern
    while rest:
        rest = rest.lstrip("*")
        # scanChunk: the chunk ends at a * outside [...]; \\ escapes one character.
        i, in_class = 0, False
        while i < len(rest):
            c = rest[i]
            if c == "\\":
                i += 1
            elif c == "[":
                in_class = True
            elif c == "]":
                in_class = False
            elif c == "*" and not in_class:
                break
            i += 1
        chunk, rest = rest[:i], rest[i:]
        if not _chunk_ok(chunk):
            return False
    return True


def _chunk_ok(chunk: str) -> bool:
    """matchChunk's checks of a chunk's syntax (literals, ?, \\c, classes)."""
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == "[":
            i += 1
            if i < len(chunk) and chunk[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < len(chunk) and chunk[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = _class_char(chunk, i)
                if i < 0:
                    return False
                if chunk[i] == "-":
                    i = _class_char(chunk, i + 1)
                    if i < 0:
                        return False
                ranges += 1
        elif c == "\\":
            if i + 1 >= len(chunk):
                return False
            i += 2
        else:
            i += 1
    return True


def _class_char(chunk: str, i: int) -> int:
    """getEsc: the index after one class character at i, or -1 when there is
    none or nothing follows it (the class is never closed)."""
    if i >= len(chunk) or chunk[i] in "-]":
        return -1
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            return -1
    i += 1
    return i if i < len(chunk) else -1


def event_id(field: str, value: object) -> int | None:
    """Check an event index to resume after: None, or 0 to 2**63-1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << 63:
        raise invalid(field, "must be the index of an event: a non-negative integer")
    return value


def migration_id(value: object) -> str:
    """Check a migration id, which goes into a URL path too."""
    text = _string("id", value)
    if not _MIGRATION_ID.fullmatch(text):
        raise invalid("id", "is not a migration id")
    return text


def positive(field: str, value: object) -> int:
    """Check a version number (for ``version`` and ``if_match``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    if value < 1:
        raise invalid(field, "must be a positive integer")
    return value


def keys(field: str, values: Iterable[object]) -> list[str]:
    """Check secret keys (``^[A-Za-z0-9_.-]{1,128}$``); keys are not secret,
    so the message may quote one, shortened as the gateway does."""
    out = []
    for value in values:
        key = _string(f"a key of {field}", value)
        if not _KEY.fullmatch(key):
            raise invalid(field, f"key {key[:140]!r} {_KEY_RULE}")
        out.append(key)
    return out


def strings(field: str, mapping: object) -> dict[str, str]:
    """Check a mapping of str to str whose values must survive as UTF-8.

    A str holding a lone surrogate cannot be encoded as UTF-8; JSON would
    carry it as an escape that the gateway silently turns into U+FFFD, so
    it is refused here, naming the key and never showing the value.
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{field} must be a mapping of str to str, not {type(mapping).__name__}")
    out: dict[str, str] = {}
    for key, value in mapping.items():
        _string(f"a key of {field}", key)
        if not isinstance(value, str):
            raise TypeError(f"{field}[{key!r}] must be a str, not {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(f"{field}.{key}", "value must be valid UTF-8 (it holds a lone surrogate)") from None
        out[key] = value
    return out
