"""Redis connection settings, clients, and one-line descriptions of Redis failures.

Used by the blocklist store and its followers, the cluster, the control plane and
enforce; the URL's password never reaches a message.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ConnectionError, RedisError, ResponseError

from streamguard.errors import StreamguardError
from streamguard.infra.redaction import redact

DEFAULT_PREFIX = "streamguard:"
DEFAULT_MAX_CHANGES = 10_000


class RedisSetupError(StreamguardError):
    """The Redis settings cannot be used: a bad URL, an unreadable password file."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = ""  # empty: no Redis, blocklists come from files
    prefix: str = DEFAULT_PREFIX
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_changes: int = DEFAULT_MAX_CHANGES
    timeout_s: float = 5.0


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client for ``settings.url`` (redis://, rediss:// for TLS, unix://); lazy, no I/O yet.

    Its replies are bytes (no ``decode_responses``), where redis-py's types allow bytes or
    str: callers that read replies say so with a ``cast``."""
    options: dict[str, Any] = {  # keyword arguments of the connection class
        "socket_connect_timeout": settings.timeout_s,
        "socket_timeout": settings.timeout_s,
        "health_check_interval": 10,
    }
    if settings.password_file is not None:
        try:
            options["password"] = settings.password_file.read_text().strip()
        except OSError as exc:
            raise RedisSetupError(
                f"{settings.password_file}: cannot read password ({exc.strerror})"
            ) from None
    if settings.url.startswith("rediss://"):
        options["ssl_ca_certs"] = settings.ca_file and str(settings.ca_file)
        options["ssl_certfile"] = settings.cert_file and str(settings.cert_file)
        options["ssl_keyfile"] = settings.key_file and str(settings.key_file)
    try:
        return aioredis.Redis.from_url(settings.url, **options)
    except ValueError as exc:
        raise RedisSetupError(f"{redact(settings.url)}: not a Redis URL ({exc})") from None


def describe(error: RedisError, url: str) -> str:
    """One line for a Redis failure, with the URL's password hidden."""
    text = str(error)
    if isinstance(error, AuthenticationError | ResponseError):
        if any(s in text for s in ("NOAUTH", "Authentication required", "HELLO must be called")):
            return f"{redact(url)}: Redis requires a password (none given)"
        if isinstance(error, AuthenticationError) or "WRONGPASS" in text:
            return f"{redact(url)}: authentication failed (wrong user name or password)"
    cause = error.__cause__ or error.__context__
    if isinstance(error, ConnectionError) and isinstance(cause, OSError) and cause.errno:
        # asyncio puts its own text in strerror; the errno says it plainly
        reason = os.strerror(cause.errno) if cause.errno > 0 else cause.strerror
        return f"{redact(url)}: cannot connect ({reason})"
    reason = text.split("\n")[0] or error.__class__.__name__
    return f"{redact(url)}: {reason}"
