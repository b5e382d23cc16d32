"""The settings of ``run`` and ``enforce``: plain values (model.py and a module per
table), the TOML loader (load.py), and what goes over the file (overrides.py)."""

from streamguard.config.errors import ConfigError
from streamguard.config.load import (
    STREAM_ID,
    check_streams,
    load_file,
    parse_sampling,
    parse_stream,
    parse_stream_flag,
    read_secret,
    table,
)
from streamguard.config.model import (
    RUN_SCHEMES,
    ApiSettings,
    ClusterSettings,
    ControlSettings,
    EnforceSettings,
    IncidentSettings,
    IngestSettings,
    Robustness,
    Settings,
    StreamConfig,
)
from streamguard.config.mqtt import MqttSettings
from streamguard.config.overrides import from_environment, redis_from_environment, resolve
from streamguard.config.policy import Policy, Rule
from streamguard.config.sampling import GuardSettings, Sampling

__all__ = [
    "RUN_SCHEMES",
    "STREAM_ID",
    "ApiSettings",
    "ClusterSettings",
    "ConfigError",
    "ControlSettings",
    "EnforceSettings",
    "GuardSettings",
    "IncidentSettings",
    "IngestSettings",
    "MqttSettings",
    "Policy",
    "Robustness",
    "Rule",
    "Sampling",
    "Settings",
    "StreamConfig",
    "check_streams",
    "from_environment",
    "load_file",
    "parse_sampling",
    "parse_stream",
    "parse_stream_flag",
    "read_secret",
    "redis_from_environment",
    "resolve",
    "table",
]
