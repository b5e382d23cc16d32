"""Settings of ``streamguard run``: a TOML file, then STREAMGUARD_* variables, then flags.

Every key is optional; the defaults run the embedded set-up (file blocklists,
events on stdout). See docs/configuration.md for the file format.
"""

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamguard.detect.matcher import Robustness
from streamguard.detect.policy import Policy, PolicyError, parse_policy
from streamguard.errors import StreamguardError
from streamguard.events.broker import MqttSettings
from streamguard.events.outbox import DEFAULT_MAX_EVENTS
from streamguard.hashing import check_distance
from streamguard.infra.redis import RedisSettings
from streamguard.ingest.sampling import GuardSettings, Sampling
from streamguard.ingest.source import HLS_HOLD_RELOADS, OPEN_TIMEOUT_S
from streamguard.values import positive_seconds

RUN_SCHEMES = ("rtmp", "rtmps", "http", "https")
DEFAULT_STATE_DIR = Path("streamguard-state")
STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


class ConfigError(StreamguardError):
    """The configuration is invalid; the message names the setting."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    id: str
    url: str
    sample: Sampling | None = None  # None: run's --sample or [sampling] mode


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """How sources are opened and watched (seconds unless named otherwise)."""

    allowed_schemes: tuple[str, ...] = RUN_SCHEMES
    open_timeout_s: float = OPEN_TIMEOUT_S
    read_timeout_s: float = 5.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 30.0
    max_lag_s: float = 4.0
    hls_hold_reloads: int = HLS_HOLD_RELOADS
    queue_size: int = 8  # sampled frames waiting for hashing (a decoded frame each)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Streams registered in Redis and leased across every run process (docs/cluster.md)."""

    enabled: bool = False
    capacity: int = 200  # most streams one worker process watches
    lease_ttl_s: float = 8.0  # a crashed worker's streams are taken over within this


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """Registering streams: the media-server webhook and the MQTT control topic."""

    secret_file: Path | None = None  # the shared secret both must present
    pull_url: str = "rtmp://127.0.0.1:1935/{path}"  # how a registered stream is read
    stream_id: str = "{app}-{name_digest}"  # the id of a stream the media server registers


@dataclass(frozen=True, slots=True)
class Settings:
    streams: tuple[StreamConfig, ...] = ()
    blocklists: tuple[Path, ...] = ()
    blocklist_algo: str | None = None
    max_distance: dict[str, int] = field(default_factory=dict)
    allow_degenerate: bool = False  # load degenerate entries from files (blocklist/degenerate.py)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    policy: Policy = field(default_factory=Policy)
    detect: Robustness = field(default_factory=Robustness)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    sample: Sampling = field(default_factory=Sampling)  # streams without a sample of their own
    sampling: GuardSettings = field(default_factory=GuardSettings)
    state_dir: Path = DEFAULT_STATE_DIR  # the MQTT outbox lives here
    outbox_max_events: int = DEFAULT_MAX_EVENTS
    http_host: str = "127.0.0.1"
    http_port: int = 9310
    processes: int = 0  # 0: one per core
    hash_threads: int = 0  # 0: one per core
    worker_timeout_s: float = 30.0  # a worker process silent this long is killed, restarted
    worker_id: str = ""


def _seconds(where: str, value: Any) -> float:
    if (seconds := positive_seconds(value)) is None:
        raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
    return seconds


def parse_stream(where: str, stream_id: Any, url: Any, sample: Any = None) -> StreamConfig:
    if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
        raise ConfigError(
            f"{where}: stream id {stream_id!r} must be 1-128 letters, digits, '.', '_' or '-'"
        )
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: stream '{stream_id}' needs a 'url'")
    return StreamConfig(
        stream_id, url, None if sample in (None, "") else parse_sampling(where, sample)
    )


def parse_sampling(where: str, text: Any) -> Sampling:
    try:
        return Sampling.parse(str(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _sampling(where: str, table: Any) -> tuple[Sampling, GuardSettings]:
    """``[sampling]``: ``mode`` for streams without their own, and guard's knobs."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    knobs = {key: value for key, value in table.items() if key != "mode"}
    mode = parse_sampling(f"{where}.mode", table.get("mode", "guard"))
    try:
        return mode, _table(where, knobs, Path("."), GuardSettings())
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_stream_flag(text: str) -> StreamConfig:
    """``--stream ID=URL``."""
    stream_id, sep, url = text.partition("=")
    if not sep:
        raise ConfigError(f"--stream '{text[:40]}': expected ID=URL")
    return parse_stream("--stream", stream_id, url)


def _ingest(where: str, table: dict[str, Any]) -> IngestSettings:
    known = IngestSettings.__dataclass_fields__
    if unknown := set(table) - set(known):
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "allowed_schemes":
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise ConfigError(f"{where}.allowed_schemes: expected a list of scheme names")
            values[key] = tuple(s.lower() for s in value)
        elif key in ("hls_hold_reloads", "queue_size"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{key}: expected a positive integer, got {value!r}")
            values[key] = value
        else:
            values[key] = _seconds(f"{where}.{key}", value)
    return IngestSettings(**values)


def _table(where: str, table: Any, base: Path, defaults: Any) -> Any:
    """A settings table over ``defaults``: strings, file paths, numbers, flags."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    known = type(defaults).__dataclass_fields__
    if unknown := set(table) - set(known):
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(defaults, key)
        if key.endswith("_file"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.{key}: expected a file path")
            values[key] = base / value
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false")
            values[key] = value
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: expected a string")
            values[key] = value
        elif isinstance(default, int):
            values[key] = _count(f"{where}.{key}", value) or default
        else:
            values[key] = _seconds(f"{where}.{key}", value)
    return replace(defaults, **values)


def _policy(where: str, table: Any) -> Policy:
    try:
        return parse_policy(where, table)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def load_file(path: Path) -> Settings:
    """Settings from a TOML file (see docs/configuration.md)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    known = {"streams", "blocklist", "redis", "mqtt", "policy", "ingest", "http", "processes"}
    known |= {"cluster", "control", "detect", "sampling"}
    known |= {"hash_threads", "worker_id", "state_dir", "outbox_max_events", "worker_timeout_s"}
    known.add("enforce")  # read by `streamguard enforce`
    if unknown := set(data) - known:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    streams = []
    for number, table in enumerate(data.get("streams", [])):
        where = f"{path}: streams[{number}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table with id and url")
        streams.append(parse_stream(where, table.get("id"), table.get("url"), table.get("sample")))
    blocklist = data.get("blocklist", {})
    files = blocklist.get("files", [])
    max_distance = blocklist.get("max_distance", {})
    if not isinstance(files, list) or not isinstance(max_distance, dict):
        raise ConfigError(f"{path}: blocklist.files must be a list, blocklist.max_distance a table")
    for algo, value in max_distance.items():
        try:
            check_distance(algo, value)
        except ValueError as exc:
            raise ConfigError(f"{path}: blocklist.max_distance.{algo}: {exc}") from None
    allow_degenerate = blocklist.get("allow_degenerate", False)
    if not isinstance(allow_degenerate, bool):
        raise ConfigError(f"{path}: blocklist.allow_degenerate: expected true or false")
    sample, sampling = _sampling(f"{path}: sampling", data.get("sampling", {}))
    settings = Settings(
        streams=tuple(streams),
        sample=sample,
        sampling=sampling,
        blocklists=tuple(path.parent / file for file in files),
        blocklist_algo=blocklist.get("algo"),
        max_distance=dict(max_distance),
        allow_degenerate=allow_degenerate,
        ingest=_ingest(f"{path}: ingest", data.get("ingest", {})),
        redis=_table(f"{path}: redis", data.get("redis", {}), path.parent, RedisSettings()),
        mqtt=_table(f"{path}: mqtt", data.get("mqtt", {}), path.parent, MqttSettings()),
        cluster=_table(f"{path}: cluster", data.get("cluster", {}), path.parent, ClusterSettings()),
        control=_table(f"{path}: control", data.get("control", {}), path.parent, ControlSettings()),
        policy=_policy(f"{path}: policy", data.get("policy", {})),
        detect=_table(f"{path}: detect", data.get("detect", {}), path.parent, Robustness()),
        state_dir=path.parent / str(data.get("state_dir", DEFAULT_STATE_DIR)),
        outbox_max_events=_count(f"{path}: outbox_max_events", data.get("outbox_max_events", 0))
        or DEFAULT_MAX_EVENTS,
        processes=_count(f"{path}: processes", data.get("processes", 0)),
        hash_threads=_count(f"{path}: hash_threads", data.get("hash_threads", 0)),
        worker_timeout_s=_seconds(f"{path}: worker_timeout_s", data.get("worker_timeout_s", 30.0)),
        worker_id=str(data.get("worker_id", "")),
    )
    if "http" in data:
        settings = with_http(settings, str(data["http"]), f"{path}: http")
    return settings


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def with_http(settings: Settings, text: str, where: str = "--http") -> Settings:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT, got '{text}'")
    return replace(settings, http_host=host.strip("[]") or "127.0.0.1", http_port=int(port))


def from_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """Apply STREAMGUARD_HTTP, _PROCESSES, _WORKER_ID, _REDIS_URL, _REDIS_PREFIX, _MQTT_URL."""
    environ = os.environ if environ is None else environ
    if "STREAMGUARD_HTTP" in environ:
        settings = with_http(settings, environ["STREAMGUARD_HTTP"], "STREAMGUARD_HTTP")
    if "STREAMGUARD_PROCESSES" in environ:
        text = environ["STREAMGUARD_PROCESSES"]
        if not text.isdigit():
            raise ConfigError(f"STREAMGUARD_PROCESSES: expected a whole number, got '{text}'")
        settings = replace(settings, processes=int(text))
    if "STREAMGUARD_WORKER_ID" in environ:
        settings = replace(settings, worker_id=environ["STREAMGUARD_WORKER_ID"])
    if "STREAMGUARD_MQTT_URL" in environ:
        settings = replace(
            settings, mqtt=replace(settings.mqtt, url=environ["STREAMGUARD_MQTT_URL"])
        )
    return replace(settings, redis=redis_from_environment(settings.redis, environ))


def redis_from_environment(
    redis: RedisSettings, environ: Mapping[str, str] | None = None
) -> RedisSettings:
    """STREAMGUARD_REDIS_URL and STREAMGUARD_REDIS_PREFIX over ``redis``."""
    environ = os.environ if environ is None else environ
    if "STREAMGUARD_REDIS_URL" in environ:
        redis = replace(redis, url=environ["STREAMGUARD_REDIS_URL"])
    if "STREAMGUARD_REDIS_PREFIX" in environ:
        redis = replace(redis, prefix=environ["STREAMGUARD_REDIS_PREFIX"])
    return redis


def check_streams(streams: tuple[StreamConfig, ...]) -> None:
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
