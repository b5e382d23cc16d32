"""What a kill ends on the media server, and how a ``stream_id`` is mapped to it.

Events carry the stream id, never the stream key, so the key comes from the same
configuration ``streamguard run`` watches, or from the cluster's stream registry
(enforce/registry.py).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from streamguard.config import StreamConfig
from streamguard.infra.redaction import REDACTED
from streamguard.ingest.urls import scheme_of


@dataclass(frozen=True, slots=True)
class Target:
    """A published stream: its path on the media server, ``APP/KEY``.

    The key is the publisher's secret: print :attr:`shown`, never :attr:`path`.
    """

    path: str

    @property
    def app(self) -> str:
        """Everything before the last ``/`` (as ``redact`` and FFmpeg split RTMP URLs)."""
        return self.path.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def shown(self) -> str:
        return f"{self.app}/{REDACTED}" if self.app else REDACTED

    @property
    def digest(self) -> str:
        """What the deny list stores instead of the key."""
        return hashlib.sha256(self.path.encode()).hexdigest()

    @classmethod
    def of(cls, app: str, name: str) -> "Target":
        return cls(f"{app}/{name}" if app else name)


class Resolver(Protocol):
    def resolve(self, stream_id: str) -> Target | None:
        """The stream's target, None when the stream is unknown or cannot be enforced."""
        ...

    async def refresh(self) -> None:
        """Look again for streams registered since (before giving up on an unknown one)."""
        ...


def target_of_url(url: str) -> Target | None:
    """``rtmp[s]://host[:port]/APP/KEY[?query]`` -> ``APP/KEY``; None for other URLs."""
    if scheme_of(url) not in ("rtmp", "rtmps"):
        return None
    path = urlsplit(url).path.strip("/")
    return Target(path) if path else None


class ConfigResolver:
    """Streams from the TOML configuration and ``--stream`` flags.

    Only RTMP URLs name a publisher; a stream watched over HLS cannot be mapped.
    """

    def __init__(self, streams: Iterable[StreamConfig]) -> None:
        self._targets = {stream.id: target_of_url(stream.url) for stream in streams}

    @property
    def unmapped(self) -> list[str]:
        """Configured streams that cannot be enforced (not RTMP)."""
        return sorted(stream_id for stream_id, target in self._targets.items() if target is None)

    def __len__(self) -> int:
        return len(self._targets)

    def resolve(self, stream_id: str) -> Target | None:
        return self._targets.get(stream_id)

    async def refresh(self) -> None:
        """The configuration does not change while running."""
