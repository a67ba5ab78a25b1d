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
