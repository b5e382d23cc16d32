"""The TOML file of ``run`` and ``enforce`` into `Settings` (config/model.py), every table
checked by one rule per value type; config/overrides.py applies the environment and
flags on top.

Every key is optional; the defaults run the embedded set-up (file blocklists,
events on stdout). See docs/configuration.md for the file format.
"""

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamguard.config import model
from streamguard.config.checks import distances, seconds
from streamguard.config.errors import ConfigError
from streamguard.config.mqtt import MqttSettings
from streamguard.config.policy_table import parse_policy
from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.infra.redis import RedisSettings

STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def parse_stream(where: str, stream_id: Any, url: Any, sample: Any = None) -> model.StreamConfig:
    if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
        raise ConfigError(
            f"{where}: stream id {stream_id!r} must be 1-128 letters, digits, '.', '_' or '-'"
        )
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: stream '{stream_id}' needs a 'url'")
    return model.StreamConfig(
        stream_id, url, None if sample in (None, "") else parse_sampling(where, sample)
    )


def parse_sampling(where: str, text: Any) -> Sampling:
    try:
        return Sampling.parse(str(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _sampling(where: str, raw: Any) -> tuple[Sampling, GuardSettings]:
    """``[sampling]``: ``mode`` for streams without their own, and guard's knobs."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    knobs = {key: value for key, value in raw.items() if key != "mode"}
    mode = parse_sampling(f"{where}.mode", raw.get("mode", "guard"))
    return mode, table(where, knobs, Path("."), GuardSettings())


def parse_stream_flag(text: str) -> model.StreamConfig:
    """``--stream ID=URL``."""
    stream_id, sep, url = text.partition("=")
    if not sep:
        raise ConfigError(f"--stream '{text[:40]}': expected ID=URL")
    return parse_stream("--stream", stream_id, url)


def table(where: str, raw: Any, base: Path, defaults: Any) -> Any:
    """A TOML table over the dataclass ``defaults``, each value checked by the type of its
    default: ``*_file`` paths (relative to ``base``), flags, strings, lists of names,
    whole numbers (>= 1) and seconds (> 0)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    known = type(defaults).__dataclass_fields__
    if unknown := set(raw) - set(known):
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values = {
        key: _value(f"{where}.{key}", key, value, getattr(defaults, key), base)
        for key, value in raw.items()
    }
    try:
        return replace(defaults, **values)
    except ValueError as exc:  # a dataclass's own check across keys
        raise ConfigError(f"{where}: {exc}") from None


def _value(where: str, key: str, value: Any, default: Any, base: Path) -> Any:
    if key.endswith("_files"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: expected a list of file paths")
        return tuple(base / v for v in value)
    if key.endswith("_file"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a file path")
        return base / value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of names")
        return tuple(v.lower() for v in value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: expected a whole number >= 1, got {value!r}")
        return value
    return seconds(where, value)


_TABLES = {  # the tables every key of which `table` checks, and their defaults
    "ingest": model.IngestSettings(),
    "redis": RedisSettings(),
    "mqtt": MqttSettings(),
    "cluster": model.ClusterSettings(),
    "control": model.ControlSettings(),
    "detect": model.Robustness(),
    "incidents": model.IncidentSettings(),
    "enforce": model.EnforceSettings(),  # for `streamguard enforce`
    "api": model.ApiSettings(),  # for `streamguard api`
}
_TOP_LEVEL = {"streams", "blocklist", "policy", "http", "processes", "sampling", "hash_threads"}
_TOP_LEVEL |= {"worker_id", "state_dir", "outbox_max_events", "worker_timeout_s"}


def load_file(path: Path) -> model.Settings:
    """Settings from a TOML file (see docs/configuration.md)."""
    data = _read_toml(path)
    if unknown := set(data) - _TOP_LEVEL - set(_TABLES):
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    base = path.parent
    sample, sampling = _sampling(f"{path}: sampling", data.get("sampling", {}))
    settings = model.Settings(
        streams=_streams(path, data.get("streams", [])),
        sample=sample,
        sampling=sampling,
        policy=parse_policy(f"{path}: policy", data.get("policy", {})),
        state_dir=base / str(data.get("state_dir", model.DEFAULT_STATE_DIR)),
        outbox_max_events=_count(f"{path}: outbox_max_events", data.get("outbox_max_events", 0))
        or model.DEFAULT_MAX_EVENTS,
        processes=_count(f"{path}: processes", data.get("processes", 0)),
        hash_threads=_count(f"{path}: hash_threads", data.get("hash_threads", 0)),
        worker_timeout_s=seconds(f"{path}: worker_timeout_s", data.get("worker_timeout_s", 30.0)),
        worker_id=str(data.get("worker_id", "")),
        **_blocklist(path, data.get("blocklist", {})),
        **{
            name: table(f"{path}: {name}", data.get(name, {}), base, defaults)
            for name, defaults in _TABLES.items()
        },
    )
    if "http" in data:
        settings = replace(settings, **http_address(str(data["http"]), f"{path}: http"))
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _streams(path: Path, entries: Any) -> tuple[model.StreamConfig, ...]:
    """``[[streams]]``: id, url and optionally sample of each."""
    streams = []
    for number, entry in enumerate(entries):
        where = f"{path}: streams[{number}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table with id and url")
        streams.append(parse_stream(where, entry.get("id"), entry.get("url"), entry.get("sample")))
    return tuple(streams)


def _blocklist(path: Path, raw: Any) -> dict[str, Any]:
    """``[blocklist]``: files, algo of bare hash files, max_distance, allow_degenerate."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: blocklist: expected a table")
    files = raw.get("files", [])
    max_distance = raw.get("max_distance", {})
    if not isinstance(files, list) or not isinstance(max_distance, dict):
        raise ConfigError(f"{path}: blocklist.files must be a list, blocklist.max_distance a table")
    allow_degenerate = raw.get("allow_degenerate", False)
    if not isinstance(allow_degenerate, bool):
        raise ConfigError(f"{path}: blocklist.allow_degenerate: expected true or false")
    return {
        "blocklists": tuple(path.parent / file for file in files),
        "blocklist_algo": raw.get("algo"),
        "max_distance": distances(f"{path}: blocklist.max_distance", max_distance),
        "allow_degenerate": allow_degenerate,
    }


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def http_address(text: str, where: str) -> dict[str, Any]:
    """``HOST:PORT`` as the ``http_host`` and ``http_port`` settings."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT, got '{text}'")
    return {"http_host": host.strip("[]") or "127.0.0.1", "http_port": int(port)}


def check_streams(streams: tuple[model.StreamConfig, ...]) -> None:
    """Stream ids must be unique."""
    seen: set[str] = set()
    for stream in streams:
        if stream.id in seen:
            raise ConfigError(f"stream id '{stream.id}' is configured twice")
        seen.add(stream.id)


def read_secret(path: Path | None, what: str) -> str:
    """The content of ``path`` without surrounding white space; "" when there is no file."""
    if path is None:
        return ""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.__class__.__name__})") from None
    if not secret:
        raise ConfigError(f"{path}: the {what} file is empty")
    return secret
