"""What must hold of ``[enforce]`` (config/model.py ``EnforceSettings``) before
``streamguard enforce`` starts. See docs/enforcement.md for every key."""

import ipaddress
from urllib.parse import urlsplit

from streamguard.config import ConfigError, EnforceSettings
from streamguard.enforce.adapters import ADAPTERS


def check(settings: EnforceSettings) -> None:
    """What must hold before starting; each problem is one line naming the setting."""
    if settings.adapter not in ADAPTERS:
        raise ConfigError(f"enforce.adapter: expected one of {', '.join(ADAPTERS)}")
    if urlsplit(settings.api_url).scheme not in ("http", "https"):
        raise ConfigError("enforce.api_url: expected the media server's http(s):// API URL")
    host, _, port = settings.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"enforce.listen: expected HOST:PORT, got '{settings.listen}'")
    if settings.hook_secret_file is None and not _loopback(host.strip("[]")):
        raise ConfigError(
            "enforce.listen: the publish hook listens beyond loopback, so it needs "
            "enforce.hook_secret_file"
        )
    if not settings.client_id:
        raise ConfigError("enforce.client_id: must not be empty")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
