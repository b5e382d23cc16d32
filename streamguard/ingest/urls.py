"""Which sources may be opened, how FFmpeg may reach them, and how they are shown.

Stream URLs carry secrets (RTMP stream keys, tokens in query strings, user
info), so every place that prints a source goes through ``infra.redaction.redact``.
"""

from pathlib import Path
from urllib.parse import urlsplit

from streamguard.errors import SourceRefused
from streamguard.infra.redaction import redact

DEFAULT_SCHEMES = frozenset({"file", "rtmp", "rtmps", "http", "https"})

# FFmpeg protocols each scheme needs, for ``protocol_whitelist``: an HLS
# playlist fetched over HTTP can then name neither local files nor other protocols.
_PROTOCOLS = {
    "file": "file",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,tcp,tls",
    "http": "http,tcp,crypto",
    "https": "https,http,tcp,tls,crypto",
}


def scheme_of(source: str) -> str:
    """``file`` for plain paths and file:// URLs, else the lower-cased URL scheme."""
    scheme = urlsplit(source).scheme.lower()
    # A one-letter scheme is a Windows drive letter, not a protocol.
    return scheme if len(scheme) > 1 else "file"


def check_allowed(source: str, allowed: frozenset[str] = DEFAULT_SCHEMES) -> str:
    """Return the FFmpeg ``protocol_whitelist`` for ``source`` or refuse its scheme."""
    try:
        scheme = scheme_of(source)
    except ValueError:  # urlsplit: an unbalanced or invalid [IPv6] host; nothing to redact by
        raise SourceRefused("not a valid URL (bad [IPv6] host)") from None
    if scheme not in allowed or scheme not in _PROTOCOLS:
        enabled = ", ".join(sorted(allowed & _PROTOCOLS.keys()))
        raise SourceRefused(
            f"{redact(source)}: URL scheme '{scheme}' is not enabled (enabled: {enabled})"
        )
    return _PROTOCOLS[scheme]


def local_path(source: str) -> Path | None:
    """The filesystem path of a local source, None for network URLs."""
    if scheme_of(source) != "file":
        return None
    parts = urlsplit(source)
    return Path(parts.path) if parts.scheme.lower() == "file" else Path(source)
