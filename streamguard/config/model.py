"""The settings of ``run`` and ``enforce`` as plain values: one dataclass per table of the
TOML file (docs/configuration.md). Nothing here imports the domain; the domain
imports these, and config/load.py fills them from the file."""

from dataclasses import dataclass, field
from pathlib import Path

from streamguard.config.mqtt import MqttSettings
from streamguard.config.policy import Policy
from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.infra.redis import RedisSettings

RUN_SCHEMES = ("rtmp", "rtmps", "http", "https")
DEFAULT_STATE_DIR = Path("streamguard-state")
DEFAULT_MAX_EVENTS = 100_000  # the outbox's bound
OPEN_TIMEOUT_S = 10.0
HLS_HOLD_RELOADS = 10
DEFAULT_ENFORCE_STATE_FILE = Path("streamguard-state/enforce.sqlite3")


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as host and port."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Robustness:
    """Which evasion-resistance steps run before matching ([detect] in the config)."""

    borders: bool = True  # also hash the frame without letterbox/pillarbox/padding bars
    dihedral: bool = True  # PDQ: also match the picture flipped and turned by 90 degrees


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
    state_file: Path = DEFAULT_ENFORCE_STATE_FILE
    client_id: str = "streamguard-enforce"  # MQTT: fixed, so the broker keeps the session
    retry_initial_s: float = 0.5  # media server API back-off: doubles per failure, jittered
    retry_max_s: float = 30.0

    @property
    def listen_address(self) -> tuple[str, int]:
        return split_address(self.listen)


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
class IncidentSettings:
    """``[incidents]``: the ring of recent frame hashes each watched stream keeps
    (docs/incidents.md)."""

    window_s: float = 120.0  # stream time kept: the longest an incident can reach back
    max_frames: int = 1200  # and at most this many frames (10 a second over 120 s)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """``[api]``: ``streamguard api``, the matching API for uploads (docs/api.md)."""

    listen: str = "127.0.0.1:9312"
    token_files: tuple[Path, ...] = ()  # one bearer token per file, named by the file
    max_body_bytes: int = 128 * 1024 * 1024  # an upload, whole
    max_picture_pixels: int = 50_000_000  # width x height, read from the header first
    max_video_s: float = 600.0  # longest video scanned
    request_timeout_s: float = 60.0  # reading the body and scanning it
    max_lookup_hashes: int = 1000  # hashes in one POST /v1/lookup

    def __post_init__(self) -> None:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen: expected HOST:PORT, got '{self.listen}'")

    @property
    def listen_address(self) -> tuple[str, int]:
        return split_address(self.listen)


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
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
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
    enforce: EnforceSettings = field(default_factory=EnforceSettings)  # streamguard enforce
    api: ApiSettings = field(default_factory=ApiSettings)  # streamguard api
