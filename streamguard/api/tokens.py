"""The bearer tokens ``streamguard api`` accepts: one per file, named by the file.

A token file holds one token, as a Kubernetes secret mounted as a volume holds one value
per file; its name (the file name without suffix) is what logs and metrics show of the
client, never the token. Tokens are kept as SHA-256 digests and each request's is
compared with every one of them in constant time.
"""

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from streamguard.config import ConfigError, read_secret

MIN_TOKEN_CHARS = 16
ANONYMOUS = "anonymous"  # the client of a request on a server without tokens


class Tokens:
    """Token digests by client name; empty when the API is open (loopback only)."""

    def __init__(self, digests: dict[str, bytes]) -> None:
        self._digests = digests

    @classmethod
    def from_files(cls, files: Iterable[Path]) -> "Tokens":
        """ConfigError (one line, naming the file) for an unreadable, empty or short token
        file, or two files of one name."""
        digests: dict[str, bytes] = {}
        for path in files:
            token = read_secret(path, "API token")
            if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
                raise ConfigError(
                    f"{path}: an API token is one word of at least {MIN_TOKEN_CHARS} characters"
                )
            name = path.stem
            if name in digests:
                raise ConfigError(f"{path}: a second token named '{name}' (file names name them)")
            digests[name] = hashlib.sha256(token.encode()).digest()
        return cls(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def client(self, authorization: str | None) -> str | None:
        """The name of the token an ``Authorization: Bearer TOKEN`` header carries, or
        None if it carries none of them."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for name, known in self._digests.items():  # every one: the time tells nothing
            if hmac.compare_digest(digest, known):
                found = name
        return found
