"""Tokens that rotate under a running program: a file read again whenever
it changes (the Go client's WithTokenFile, sdk/client/tokenfile.go)."""

from __future__ import annotations

import os
import re

# A token file larger than this is not a token (a wrong path, say); JWTs
# are a few kilobytes.
MAX_TOKEN_FILE_BYTES = 64 * 1024

# A token goes into a header line: visible ASCII only, so it can never break
# the request, and errors about it never need to repeat it.
TOKEN = re.compile(r"[\x21-\x7e]+")


class TokenFile:
    """A token kept in a file that is replaced while the program runs (a
    Kubernetes projected service-account token, which the kubelet swaps
    before it expires; a CI job's renewed OIDC token): read again before a
    request whenever the file changed, as the Go client's WithTokenFile
    does. One stat per request, next to a network round trip."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._stamp: tuple[int, int, int, int] | None = None
        self._token = ""

    def current(self) -> str:
        """The token, read again if the file changed (another file swapped
        in, or its size or modification time changed). Raises ValueError,
        never quoting what the file holds."""
        try:
            # Stat before reading: a change between the two is seen at the
            # next request, never hidden behind the new stamp.
            st = os.stat(self.path)
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return self._token
            with open(self.path, "rb") as f:
                raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"token file {self.path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_TOKEN_FILE_BYTES:
            raise ValueError(f"token file {self.path}: larger than {MAX_TOKEN_FILE_BYTES} bytes, not a token")
        token = raw.strip().decode("latin-1")
        if not token:
            raise ValueError(f"token file {self.path} is empty")
        if not TOKEN.fullmatch(token):
            raise ValueError(f"the token in {self.path} holds whitespace, control or non-ASCII characters")
        self._stamp, self._token = stamp, token
        return token
