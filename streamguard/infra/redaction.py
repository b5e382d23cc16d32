"""How URLs are shown: stream URLs carry secrets (RTMP stream keys, tokens in query
strings, user info), so every log line, event, status and metric goes through `redact`."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_KEYS = ("key", "token", "secret", "pass", "pwd", "sig", "auth", "credential")
REDACTED = "***"


def redact(source: str) -> str:
    """Hide passwords, secret query parameters and RTMP stream keys."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1 or scheme == "file":
        return source
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    path = parts.path
    if scheme in ("rtmp", "rtmps"):
        # rtmp://host/app/<stream key>: the last segment is the publisher's secret.
        app, _, key = path.rpartition("/")
        if app and key:
            path = f"{app}/{REDACTED}"
    query = urlencode(
        [
            (name, REDACTED if any(s in name.lower() for s in _SECRET_QUERY_KEYS) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))
