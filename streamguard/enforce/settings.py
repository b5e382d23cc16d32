"""Settings of ``streamguard enforce``: the ``[enforce]`` table of the TOML file ``run`` uses.

``config.load_file`` accepts the table and leaves it to this module. Paths are
relative to the file. See docs/enforcement.md for every key.
"""

import ipaddress
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamguard.config import ConfigError
from streamguard.enforce.adapters import ADAPTERS
from streamguard.values import positive_seconds

DEFAULT_STATE_FILE = Path("streamguard-state/enforce.sqlite3")


@dataclass(frozen=True, slots=True)
class EnforceSettings:
    adapter: str = ""  # nginx-rtmp | mediamtx | srs
    api_url: str = ""  # nginx-rtmp control URL, MediaMTX or SRS API base URL
    api_user: str = ""
    api_password_file: Path | None = None
    api_timeout_s: float = 5.0
    listen: str = "127.0.0.1:9311"  # the publish hook
    hook_secret_file: Path | None = None
    deny_for_s: float = 86400.0  # how long a killed stream key stays refused
    state_file: Path = DEFAULT_STATE_FILE
    client_id: str = "streamguard-enforce"  # MQTT: fixed, so the broker keeps the session
    retry_initial_s: float = 0.5  # media server API back-off: doubles per failure, jittered
    retry_max_s: float = 30.0

    @property
    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def load(path: Path) -> EnforceSettings:
    """The ``[enforce]`` table of ``path`` (already read once by ``config.load_file``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    table = data.get("enforce", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: enforce: expected a table")
    return parse(f"{path}: enforce", table, path.parent)


def parse(where: str, table: dict[str, Any], base: Path) -> EnforceSettings:
    known = {field.name for field in fields(EnforceSettings)}
    if unknown := set(table) - known:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key.endswith("_file"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.{key}: expected a file path")
            values[key] = base / value
        elif key.endswith("_s"):
            if (seconds := positive_seconds(value)) is None:
                raise ConfigError(f"{where}.{key}: expected a positive number of seconds")
            values[key] = seconds
        elif not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string")
        else:
            values[key] = value
    return replace(EnforceSettings(), **values)


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
